"""The flow orchestrator: advances flow runs when their jobs end, inside Postgres
transactions that lock the run, then dispatches what became ready.

Restartable: the outcomes come from the flow inbox, which the events projection
fills in the transaction that records them, and leave it in the transaction of
the step they cause; a step writes what it publishes into the outbox in that
same transaction (see `flow_outbox`). Job ids derive from (run, node, round), so
sending again after a crash (or from a second orchestrator) is dropped as a
duplicate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import ValidationError

from bus import Bus, encode
from contracts.api import ApiFailure
from contracts.flowplan import advance, node_env, outcome
from contracts.flows import (
    FlowEvent,
    FlowRun,
    FlowSpec,
    FlowStart,
    FlowStatus,
    NodeStatus,
    flow_job_id,
    new_run_id,
    node_outcome,
)
from contracts.messages import JobEvent
from contracts.models import Application

from .credentials import Keyring
from .db import UNAVAILABLE, Db
from .flow_jobs import check_targets, node_message
from .flow_kill import CANCELLED, Killer
from .flow_outbox import Kept, Outbox, Sent, Work, keep
from .flow_queries import FlowQueries, LockedRun
from .flow_state import RunCache, RunState
from .queries import Queries

log = structlog.get_logger("jetjobs.flows")


def _event(run: FlowRun | LockedRun | RunState, status: FlowStatus, **fields: Any) -> FlowEvent:
    return FlowEvent(
        run_id=run.id, company=run.company, name=run.name, status=status, at=datetime.now(UTC), **fields
    )


def _unknown_run(run_id: str) -> ApiFailure:
    return ApiFailure(404, f"unknown flow run '{run_id}': see `jetjobs flow list`")


class _StepFailed(Exception):
    """A step failed on something other than the database being away."""

    def __init__(self, ids: list[int], job_ids: list[str]) -> None:
        super().__init__(f"flow step failed for jobs {', '.join(job_ids)}")
        self.ids = ids
        self.job_ids = job_ids


def _outcome_event(payload: str) -> JobEvent | None:
    """The event an inbox row holds (the projection validated it; a newer store's
    event an older one cannot read is logged and dropped)."""
    try:
        return JobEvent.model_validate_json(payload)
    except ValidationError as error:
        log.error("flow.bad_outcome", error=str(error))
        return None


async def _end_nodes(
    flows: FlowQueries, run: LockedRun | RunState, ended: list[tuple[JobEvent, NodeStatus, str]], work: Work
) -> list[tuple[JobEvent, NodeStatus, str]]:
    """Record the nodes' outcomes, each with its flow event; those that were new."""
    if not ended:
        return []
    outcomes = [(event.job_id, status, event.results, event.reason) for event, status, _ in ended]
    recorded = await flows.finish_nodes(run.id, outcomes)
    new = [(event, status, name) for event, status, name in ended if name in recorded]
    for event, status, name in new:
        fields = {"node": name, "node_status": status, "job_id": event.job_id, "reason": event.reason}
        work.events.append(_event(run, run.status, **fields))
    return new


def _ended(run: RunState, new: list[tuple[JobEvent, NodeStatus, str]]) -> None:
    """The recorded outcomes, in the run as its step sees it."""
    for event, status, name in new:
        run.states[name] = status
        run.results[name] = event.results


class FlowEngine:
    """Starts, advances, cancels and retries flow runs."""

    def __init__(self, pool: Any, bus: Bus, keyring: Keyring | None = None) -> None:
        self._pool = pool
        self._keyring = keyring
        """Seals a template node's values of secret fields for its job (`flow_jobs`)."""
        self._publisher = bus.publisher
        self._outbox = Outbox(pool, bus.publisher, Killer(pool, bus).kill)
        self._runs = RunCache()
        self.unsent = True
        """The outbox may hold a committed step's messages (a failed publish, or a
        store that stopped before sending): the flow loop drains it."""

    async def start_run(self, spec: FlowSpec, launched_by: str, run_id: str | None = None) -> FlowRun:
        """Start a run of `spec`; with a `run_id` that already ran, that run is left as it is."""
        run_id = run_id or new_run_id()
        async with self._pool.acquire() as conn, conn.transaction():
            await check_targets(Queries(conn), spec)
            flows = FlowQueries(conn)
            if not await flows.insert_run(run_id, spec, launched_by):  # its definition is not saved either
                return (await self._run(flows, run_id)).model_copy(update={"existing": True})
            await flows.save_definition(spec)
            run = await self._state(flows, await self._lock(flows, run_id))
            work = Work(events=[_event(run, FlowStatus.STARTED)])
            await self._step(conn, run, work)
            kept = await keep(conn, work)
        self._runs.keep([run])
        await self._send(kept)
        log.info("flow.started", run_id=run_id, company=spec.company, flow=spec.name, launched_by=launched_by)
        return await self.get(run_id)

    async def start_scheduled(self, start: FlowStart) -> FlowRun:
        """Start the saved flow a flow template's slot names, as the slot's run."""
        spec = await FlowQueries(self._pool).definition(start.company, start.flow)
        if spec is None:
            raise ApiFailure(
                404, f"template {start.template_id}: no flow '{start.flow}' in '{start.company}'"
            )
        return await self.start_run(spec, start.launched_by, run_id=start.run_id)

    async def get(self, run_id: str) -> FlowRun:
        """A run and its nodes as of one instant (a step may commit between two reads)."""
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            return await self._run(FlowQueries(conn), run_id)

    async def _run(self, flows: FlowQueries, run_id: str) -> FlowRun:
        run = await flows.run(run_id)
        if run is None:
            raise _unknown_run(run_id)
        return run

    async def _lock(self, flows: FlowQueries, run_id: str) -> LockedRun:
        locked = await flows.lock_run(run_id)
        if locked is None:
            raise _unknown_run(run_id)
        return locked

    async def _state(self, flows: FlowQueries, locked: LockedRun) -> RunState:
        """The locked run's nodes: as kept from this orchestrator's last step of it
        when no other transaction changed them since, else read."""
        kept = self._runs.get(locked)
        return kept if kept is not None else RunState.of(await self._run(flows, locked.id), locked)

    async def take_outcomes(self, limit: int) -> int:
        """Advance runs on the oldest due outcomes of the flow inbox: one transaction
        for the batch, one step per run however many of its nodes ended; how many
        outcomes were taken. A batch whose step fails is taken again one outcome at
        a time, and an outcome that fails alone is deferred, so it holds up no other."""
        try:
            return await self._take(limit)
        except _StepFailed as failed:
            if limit > 1:
                return sum([await self.take_outcomes(1) for _ in failed.ids])
            await FlowQueries(self._pool).defer_inbox(failed.ids)
            log.error("flow.step_failed", job_ids=failed.job_ids, exc_info=failed.__cause__)
            return len(failed.ids)

    async def _take(self, limit: int) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            flows = FlowQueries(conn)
            rows = await flows.take_inbox(limit)
            if not rows:
                return 0
            events = [e for e in (_outcome_event(payload) for _, payload in rows) if e is not None]
            work = Work()
            try:
                stepped = await self._advance(conn, events, work)
            except UNAVAILABLE:
                raise
            except Exception as error:
                raise _StepFailed([row_id for row_id, _ in rows], [e.job_id for e in events]) from error
            await flows.delete_inbox([row_id for row_id, _ in rows])
            kept = await keep(conn, work)
        self._runs.keep(stepped)
        try:
            await self._send(kept)
        except Exception as error:  # committed and kept in the outbox: the loop sends it again
            log.warning("flow.publish_failed", messages=len(kept.items), error=repr(error))
        return len(rows)

    async def _advance(self, conn: Db, events: Sequence[JobEvent], work: Work) -> list[RunState]:
        """Record the nodes' outcomes and step every run they belong to, runs in id
        order; the runs stepped."""
        ended = {e.job_id: (e, s) for e in events if (s := node_outcome(e)) is not None}
        if not ended:
            return []
        flows = FlowQueries(conn)
        by_run: dict[str, list[tuple[JobEvent, NodeStatus, str]]] = {}
        for job_id, run_id, name in await flows.nodes_of_jobs(list(ended)):
            event, status = ended[job_id]
            by_run.setdefault(run_id, []).append((event, status, name))
        stepped = []
        for run_id in sorted(by_run):  # one order for every orchestrator: no deadlock
            recorded = await self._record(flows, run_id, by_run[run_id], work)
            if recorded is not None:
                run, ended_now = recorded
                await self._step(conn, run, work, ended_now)
                stepped.append(run)
        return stepped

    async def _send(self, kept: Kept) -> list[str]:
        """Do a committed step's work; the jobs it asked to stop. If some of it fails,
        `unsent` says the outbox needs a drain. While it does, the step's work goes out
        with the rest, oldest first, so a run's events keep their order (its end last)
        whatever failed before."""
        try:
            sent = await self.resend() if self.unsent else await self._outbox.send(kept)
        except BaseException:
            self.unsent = True
            raise
        if sent.failed:
            self.unsent = True
        return sent.killed

    async def _record(
        self, flows: FlowQueries, run_id: str, ended: list[tuple[JobEvent, NodeStatus, str]], work: Work
    ) -> tuple[RunState, set[str]] | None:
        """Record the nodes' outcomes in one statement; the run to step and the nodes
        that ended, if it is still started and an outcome was new. A cancelled run's
        node takes its job's late success (an outcome that changes nothing else)."""
        locked = await self._lock(flows, run_id)
        new = await _end_nodes(flows, locked, ended, work)
        if locked.status is not FlowStatus.STARTED:
            await flows.outcomes_came(run_id, [event.job_id for event, _, _ in ended])
            return None
        if not new:
            return None
        run = await self._state(flows, locked)
        _ended(run, new)
        return run, {name for _, _, name in new}

    async def _step(self, conn: Db, run: RunState, work: Work, changed: Iterable[str] | None = None) -> None:
        """Skip and dispatch until nothing changes, then end the run if every node is
        done, following the nodes' statuses in `run` as they are written. Only the
        dependants of the `changed` nodes can move (every node when None)."""
        flows = FlowQueries(conn)
        while True:
            step = advance(run.spec, run.states, run.results, changed)
            if step.skip:
                await self._skip(flows, run, step.skip, work)
            refused = await self._dispatch_all(conn, run, step.dispatch, work)
            if not refused:
                break
            changed = refused  # skipped as they cannot run: their dependants decide again
        await self._finish(flows, run, work)

    async def _skip(self, flows: FlowQueries, run: RunState, reasons: dict[str, str], work: Work) -> None:
        await flows.skip_nodes(run.id, reasons)
        for name, reason in reasons.items():
            run.states[name] = NodeStatus.SKIPPED
            work.events.append(
                _event(run, run.status, node=name, node_status=NodeStatus.SKIPPED, reason=reason)
            )

    async def _dispatch_all(self, conn: Db, run: RunState, names: list[str], work: Work) -> list[str]:
        """Build the ready nodes' messages, then mark them dispatched in one statement;
        the nodes that cannot run, skipped instead, saying why."""
        apps: dict[str, Application] = {}
        ready: list[tuple[str, str, int]] = []
        refused: dict[str, str] = {}
        passed_on = {node: found for node, found in run.results.items() if found}  # once, not per node
        for name in names:
            round_ = run.rounds[name] + (1 if run.job_ids[name] else 0)
            job_id = flow_job_id(run.id, name, round_)
            env = node_env(run.spec, name, passed_on)
            try:
                message = await node_message(
                    conn, run.spec, run.spec.node(name), job_id, env, apps, self._keyring
                )
            except ApiFailure as error:
                refused[name] = f"cannot run: {error.message}"
                continue
            if (oversize := self._publisher.oversize(job_id, len(encode(message)))) is not None:
                refused[name] = f"cannot run: {oversize}: give it shorter env values or results"
                continue
            work.messages.append(message)
            work.events.append(
                _event(run, run.status, node=name, node_status=NodeStatus.DISPATCHED, job_id=job_id)
            )
            ready.append((name, job_id, round_))
        flows = FlowQueries(conn)
        if refused:
            await self._skip(flows, run, refused, work)
        if ready:
            await flows.dispatch_nodes(run.id, ready)
        for name, job_id, round_ in ready:
            run.states[name] = NodeStatus.DISPATCHED
            run.job_ids[name] = job_id
            run.rounds[name] = round_
        return list(refused)

    async def _finish(self, flows: FlowQueries, run: RunState, work: Work) -> None:
        ended = outcome(run.states, run.spec.position)
        if ended is None or run.status is not FlowStatus.STARTED:
            return
        status, reason = ended
        await flows.end_run(run.id, status, reason)
        run.status = status
        work.events.append(_event(run, status, reason=reason, result=run.result))
        log.info("flow.ended", run_id=run.id, company=run.company, status=status.value, reason=reason)

    async def resend(self) -> Sent:
        """Do what stopped stores committed but never did (see `flow_outbox`)."""
        self.unsent = False
        try:
            sent = await self._outbox.drain()
        except BaseException:
            self.unsent = True
            raise
        if sent.failed:
            self.unsent = True
        return sent

    async def retry(self, run_id: str) -> FlowRun:
        """Re-run the failed and skipped nodes of an ended run; the rest keep their results."""
        work = Work()
        async with self._pool.acquire() as conn, conn.transaction():
            flows = FlowQueries(conn)
            locked = await self._lock(flows, run_id)
            if locked.status in (FlowStatus.STARTED, FlowStatus.FINISHED):
                raise ApiFailure(
                    409,
                    f"flow run {run_id} is {locked.status.value}: only an ended run with failures can be retried",
                )
            run = await self._state(flows, locked)
            for name in await flows.reset_nodes(run_id):
                run.states[name] = NodeStatus.WAITING
                run.results[name] = {}
            await flows.end_run(run_id, FlowStatus.STARTED, None)
            run.status = FlowStatus.STARTED
            work.events.append(_event(run, FlowStatus.STARTED, reason="retry"))
            await self._step(conn, run, work)
            kept = await keep(conn, work)
        self._runs.keep([run])
        await self._send(kept)
        log.info("flow.retried", run_id=run_id, company=run.company)
        return await self.get(run_id)

    async def cancel(self, run_id: str) -> tuple[FlowRun, list[str]]:
        """End a started run as cancelled in one transaction: a node whose job's outcome
        is recorded but not stepped yet ends as its job did, the other running nodes
        fail and waiting ones are skipped, each with its flow event, and the run's end
        comes last, as when a run ends by itself. The kills of the running jobs are
        kept in the outbox with the events, so they happen even if this store stops
        right after the commit; the jobs killed by the time this returns come with
        the run. A killed job's outcome finds its node ended; one that succeeded
        after all turns its node succeeded."""
        async with self._pool.acquire() as conn, conn.transaction():
            flows = FlowQueries(conn)
            locked = await self._lock(flows, run_id)
            if locked.status is not FlowStatus.STARTED:
                raise ApiFailure(
                    409, f"flow run {run_id} already ended ({locked.status.value}): nothing to cancel"
                )
            run = await self._state(flows, locked)
            work = Work()
            await self._take_recorded(flows, run, work)
            work.kills = run.running()
            await self._stop(flows, run, work)
            await flows.end_run(run_id, FlowStatus.CANCELLED, CANCELLED)
            run.status = FlowStatus.CANCELLED
            work.events.append(_event(run, FlowStatus.CANCELLED, reason=CANCELLED, result=run.result))
            kept = await keep(conn, work)
        self._runs.keep([run])
        try:
            killed = set(await self._send(kept))
        except Exception as error:  # committed and kept in the outbox: the loop does it again
            log.warning("flow.publish_failed", messages=len(kept.items), error=repr(error))
            killed = set()
        stopped = [job_id for job_id in work.kills if job_id in killed]
        log.info(
            "flow.cancelled", run_id=run_id, company=run.company, running=len(work.kills), killed=len(stopped)
        )
        return await self.get(run_id), stopped

    async def _take_recorded(self, flows: FlowQueries, run: RunState, work: Work) -> None:
        """End the running nodes whose jobs' outcomes wait in the inbox: they ended
        before the cancel. Their inbox rows stay; the step that takes them finds the
        nodes ended."""
        running = run.running()
        if not running:
            return
        events = [e for e in map(_outcome_event, await flows.inbox_of_jobs(running)) if e is not None]
        ended = {e.job_id: (e, s) for e in events if (s := node_outcome(e)) is not None}
        names = {job_id: name for name, job_id in run.job_ids.items() if job_id in ended}
        outcomes = [(event, status, names[job_id]) for job_id, (event, status) in ended.items()]
        _ended(run, await _end_nodes(flows, run, outcomes, work))

    async def _stop(self, flows: FlowQueries, run: RunState, work: Work) -> None:
        """Fail the running nodes and skip the waiting ones, in the definition's order."""
        names = [node.name for node in run.spec.nodes]
        dispatched = [name for name in names if run.states[name] is NodeStatus.DISPATCHED]
        if dispatched:
            await flows.cancel_nodes(run.id, dispatched, CANCELLED)
        for name in dispatched:
            run.states[name] = NodeStatus.FAILED
            fields = {"node_status": NodeStatus.FAILED, "job_id": run.job_ids[name], "reason": CANCELLED}
            work.events.append(_event(run, run.status, node=name, **fields))
        waiting = {name: CANCELLED for name in names if run.states[name] is NodeStatus.WAITING}
        if waiting:
            await self._skip(flows, run, waiting, work)
