"""`history.prune`: an operator removes (or counts) old history on demand. It spans
every company, so only an admin token may ask."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import structlog
from pydantic import BaseModel

from bus.api import current_actor
from contracts.api import ApiFailure
from contracts.retention import PRUNE_BUDGET, PruneCounts, Pruned, PruneRequest

from .api import _typed
from .errors import StoreUnavailable
from .loader import Query, parse_queries
from .retention import BATCH, Horizons, OnBatch, count, own_connection, prune, try_lock
from .tokens import BOOTSTRAP_HINT, token_admin

log = structlog.get_logger("jetjobs.store")

Handler = Callable[[BaseModel], Awaitable[BaseModel]]

BUSY = (
    "history is being pruned right now by a store's background retention or another "
    "`jetjobs prune`: try again once it is done (each round ends with `store.pruned` in the store's log)"
)


@functools.cache
def audit_sql() -> dict[str, Query]:
    """Every query of `store/sql/retention_audit.sql`, read once."""
    text = resources.files("store").joinpath("sql", "retention_audit.sql").read_text(encoding="utf-8")
    return parse_queries(text)


class AuditTrail:
    """The audit entry of one prune request: who asked, the horizons, and how many rows
    of each kind went. It is written with the first batch that removes anything and
    updated with each later one, in that batch's transaction: a prune cut short (a
    store killed, Postgres gone) leaves an entry for exactly what it removed."""

    def __init__(self, request: PruneRequest, horizons: Horizons) -> None:
        self._request = request
        self._horizons = horizons
        self._actor = current_actor.get()
        self._entry: int | None = None

    async def __call__(self, conn: Any, removed: PruneCounts) -> None:
        detail = json.dumps(_detail(self._request, self._horizons, removed))
        if self._entry is None:
            self._entry = await conn.fetchval(audit_sql()["open_prune_entry"].sql, self._actor, detail)
        else:
            await conn.execute(audit_sql()["update_prune_entry"].sql, self._entry, detail)


class RetentionApi:
    """Pruning on demand, on a connection of its own (it holds the retention lock)."""

    def __init__(self, connect: Callable[[], Awaitable[Any]], on_batch: OnBatch) -> None:
        self._connect = connect
        self._on_batch = on_batch

    def handlers(self) -> dict[str, Handler]:
        return {"history.prune": _typed("history.prune", PruneRequest, self.prune)}

    async def prune(self, request: PruneRequest) -> Pruned:
        if not token_admin.get():
            raise ApiFailure(403, f"only an actor with an admin token may prune history: {BOOTSTRAP_HINT}")
        horizons = Horizons.ago(request.older_than, request.audit_older_than)
        try:
            async with own_connection(self._connect) as conn:
                counts, more = await self._run(conn, request, horizons)
        except StoreUnavailable:
            raise ApiFailure(
                503, "history.prune: the store cannot reach PostgreSQL right now; try again shortly"
            ) from None
        if counts.total and not request.dry_run:
            log.info("store.pruned", on_demand=True, more=more, **counts.model_dump())
        assert horizons.before is not None
        return Pruned(
            dry_run=request.dry_run,
            before=horizons.before,
            audit_before=horizons.audit,
            counts=counts,
            more=more,
        )

    async def _run(self, conn: Any, request: PruneRequest, horizons: Horizons) -> tuple[PruneCounts, bool]:
        if request.dry_run:
            return await count(conn, horizons), False
        if not await try_lock(conn):
            raise ApiFailure(409, BUSY)
        return await prune(conn, horizons, BATCH, PRUNE_BUDGET, self._on_batch, AuditTrail(request, horizons))


def _detail(request: PruneRequest, horizons: Horizons, counts: PruneCounts) -> dict[str, Any]:
    kept = request.model_dump(exclude_none=True, exclude={"dry_run"})
    before = {
        name: at.isoformat()
        for name, at in (("before", horizons.before), ("audit_before", horizons.audit))
        if at is not None
    }
    return {**kept, **before, "removed": {k: v for k, v in counts if v}}
