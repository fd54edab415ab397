"""One typed method per query of `sql/flows.sql`."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from importlib import resources
from typing import Any, NamedTuple

from contracts.base import STORED
from contracts.flows import (
    REASON_LISTED,
    FlowRun,
    FlowRunSummary,
    FlowSpec,
    FlowStatus,
    NodeStatus,
    NodeView,
)

from .db import Db
from .loader import Query, parse_queries
from .visibility import Reader


@functools.cache
def flows_sql() -> dict[str, Query]:
    """Every query of `store/sql/flows.sql`, read once."""
    text = resources.files("store").joinpath("sql", "flows.sql").read_text(encoding="utf-8")
    return parse_queries(text)


@functools.lru_cache(maxsize=128)
def stored_flow(text: str) -> FlowSpec:
    """A saved definition, read back: validated (cycles, conditions) once per text, as
    a run's never changes; a variable name reserved since it was saved is let through."""
    return FlowSpec.model_validate_json(text, context={STORED: True})


class LockedRun(NamedTuple):
    """A run's name and status, locked; which transaction last changed it or its
    nodes (None before any change) and which transaction holds the lock."""

    id: str
    company: str
    name: str
    status: FlowStatus
    changed_in: str | None
    this_xact: str


OutboxItem = tuple[str, str, str, str]
"""(kind, subject, Nats-Msg-Id, payload) of what a step leaves to do once it commits: a
`job` message or an `event` to publish, or a job to `kill` (named in the last two)."""


def _head(row: Any) -> dict[str, Any]:
    """The fields of `FlowRunHead` from a `flow_run` row."""
    return {
        "id": row["id"],
        "name": row["name"],
        "company": row["company"],
        "status": FlowStatus(row["status"]),
        "reason": row["reason"],
        "created_at": row["created_at"],
        "ended_at": row["ended_at"],
    }


def _run(row: Any, nodes: list[NodeView]) -> FlowRun:
    return FlowRun(**_head(row), nodes=nodes, spec=stored_flow(row["spec"]))


def _node(row: Any) -> NodeView:
    """Built without validation (`model_construct`), the values converted here: these
    rows were validated when written, and a step reads every node of its run."""
    return NodeView.model_construct(
        name=row["node"],
        status=NodeStatus(row["status"]),
        round=row["round"],
        job_id=row["job_id"],
        job_status=row["job_status"],
        results=json.loads(row["results"]),
        reason=row["reason"],
    )


class FlowQueries:
    """Flow runs and nodes, bound to one connection (or the pool)."""

    def __init__(self, db: Db) -> None:
        self._db = db
        self._sql = flows_sql()

    def _q(self, name: str) -> str:
        return self._sql[name].sql

    async def save_definition(self, spec: FlowSpec) -> None:
        await self._db.execute(self._q("save_definition"), spec.company, spec.name, spec.model_dump_json())

    async def definition(self, company: str, name: str) -> FlowSpec | None:
        text = await self._db.fetchval(self._q("definition"), company, name)
        return None if text is None else stored_flow(text)

    async def definitions_using_template(self, company: str, template_id: int) -> list[str]:
        """The saved flows of `company` with a node that runs the template, by name."""
        found = await self._db.fetch(self._q("definitions_using_template"), company, template_id)
        return [r["name"] for r in found]

    async def insert_run(self, run_id: str, spec: FlowSpec, launched_by: str) -> bool:
        """Record a run and its waiting nodes; False when a run of that id exists."""
        inserted = await self._db.fetchval(
            self._q("insert_run"), run_id, spec.company, spec.name, spec.model_dump_json(), launched_by
        )
        if inserted is None:
            return False
        await self._db.execute(self._q("insert_nodes"), run_id, [node.name for node in spec.nodes])
        return True

    async def run(self, run_id: str) -> FlowRun | None:
        row = await self._db.fetchrow(self._q("get_run"), run_id)
        return None if row is None else _run(row, await self.nodes(run_id))

    async def lock_run(self, run_id: str) -> LockedRun | None:
        """A run without its definition and nodes, locked until the transaction ends."""
        row = await self._db.fetchrow(self._q("lock_run"), run_id)
        if row is None:
            return None
        status = FlowStatus(row["status"])
        return LockedRun(row["id"], row["company"], row["name"], status, row["changed_in"], row["this_xact"])

    async def runs(self, company: str | None, limit: int, reader: Reader) -> list[FlowRunSummary]:
        """The newest runs, of companies `reader` may read, as summaries."""
        rows = await self._db.fetch(
            self._q("list_runs"), company, limit, reader.actor, reader.roles, REASON_LISTED
        )
        return [FlowRunSummary(**_head(row), node_counts=json.loads(row["node_counts"])) for row in rows]

    async def nodes(self, run_id: str) -> list[NodeView]:
        return [_node(row) for row in await self._db.fetch(self._q("nodes"), run_id)]

    async def nodes_of_jobs(self, job_ids: list[str]) -> list[tuple[str, str, str]]:
        """(job id, run id, node) of the jobs that run flow nodes."""
        rows = await self._db.fetch(self._q("nodes_of_jobs"), job_ids)
        return [(row["job_id"], row["run_id"], row["node"]) for row in rows]

    async def finish_nodes(
        self, run_id: str, ended: Sequence[tuple[str, NodeStatus, dict[str, str], str | None]]
    ) -> set[str]:
        """Record nodes' outcomes: (job id, status, results, reason) each; the nodes
        recorded (an outcome recorded before is not recorded again). A node a cancel
        failed while its job ran takes its job's success."""
        job_ids = [job_id for job_id, _, _, _ in ended]
        statuses = [status.value for _, status, _, _ in ended]
        results = [json.dumps(found) for _, _, found, _ in ended]
        reasons = [reason for _, _, _, reason in ended]
        rows = await self._db.fetch(self._q("finish_nodes"), run_id, job_ids, statuses, results, reasons)
        return {row["node"] for row in rows}

    async def outcomes_came(self, run_id: str, job_ids: list[str]) -> None:
        """The jobs of a cancelled run's nodes ended: their nodes wait for no outcome any more."""
        await self._db.execute(self._q("outcomes_came"), run_id, job_ids)

    async def dispatch_nodes(self, run_id: str, ready: list[tuple[str, str, int]]) -> None:
        """Mark waiting nodes dispatched: (node, job id, round) each."""
        names, job_ids, rounds = (list(column) for column in zip(*ready, strict=True))
        await self._db.execute(self._q("dispatch_nodes"), run_id, names, job_ids, rounds)

    async def skip_nodes(self, run_id: str, reasons: dict[str, str]) -> None:
        """Mark waiting nodes skipped, each with why."""
        await self._db.execute(self._q("skip_nodes"), run_id, list(reasons), list(reasons.values()))

    async def cancel_nodes(self, run_id: str, names: list[str], reason: str) -> None:
        """Mark dispatched nodes failed, for a cancel, waiting for their jobs' outcomes."""
        await self._db.execute(self._q("cancel_nodes"), run_id, names, reason)

    async def reset_nodes(self, run_id: str) -> list[str]:
        """For a retry: the failed and skipped nodes wait again; which they are."""
        return [row["node"] for row in await self._db.fetch(self._q("reset_nodes"), run_id)]

    async def end_run(self, run_id: str, status: FlowStatus, reason: str | None) -> None:
        await self._db.execute(self._q("end_run"), run_id, status.value, reason)

    async def put_outbox(self, items: Sequence[OutboxItem]) -> list[int]:
        """Keep messages to publish; their ids, in the order given."""
        if not items:
            return []
        columns = [list(column) for column in zip(*items, strict=True)]
        return [row["id"] for row in await self._db.fetch(self._q("put_outbox"), *columns)]

    async def outbox(self, limit: int, after: int = 0) -> list[tuple[int, OutboxItem]]:
        """The oldest rows after row `after`, with their ids."""
        rows = await self._db.fetch(self._q("outbox"), limit, after)
        return [(r["id"], (r["kind"], r["subject"], r["msg_id"], r["payload"])) for r in rows]

    async def delete_outbox(self, ids: Sequence[int]) -> None:
        if ids:
            await self._db.execute(self._q("delete_outbox"), list(ids))

    async def known_jobs(self, job_ids: Sequence[str]) -> set[str]:
        return {row["id"] for row in await self._db.fetch(self._q("known_jobs"), list(job_ids))}

    async def inbox_of_jobs(self, job_ids: list[str]) -> list[str]:
        """The outcomes (event JSON) of these jobs that wait in the inbox, oldest first."""
        return [row["payload"] for row in await self._db.fetch(self._q("inbox_of_jobs"), job_ids)]

    async def take_inbox(self, limit: int) -> list[tuple[int, str]]:
        """The oldest due outcomes (id, event JSON), locked until the transaction ends."""
        return [(row["id"], row["payload"]) for row in await self._db.fetch(self._q("take_inbox"), limit)]

    async def delete_inbox(self, ids: Sequence[int]) -> None:
        await self._db.execute(self._q("delete_inbox"), list(ids))

    async def defer_inbox(self, ids: Sequence[int]) -> None:
        await self._db.execute(self._q("defer_inbox"), list(ids))

    async def inbox_counts(self) -> tuple[int, int]:
        """(outcomes in the inbox, of which deferred after a failed step)."""
        row = await self._db.fetchrow(self._q("inbox_counts"))
        return int(row["waiting"]), int(row["deferred"])
