"""`history.prune`: an operator removes (or counts) old history on demand. It spans
every company, so only an admin token may ask."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from pydantic import BaseModel

from contracts.api import ApiFailure
from contracts.retention import PruneCounts, Pruned, PruneRequest

from .actors import audit
from .api import _typed
from .errors import StoreUnavailable
from .retention import BATCH, Horizons, OnBatch, count, own_connection, prune, try_lock
from .tokens import BOOTSTRAP_HINT, token_admin

log = structlog.get_logger("jetjobs.store")

Handler = Callable[[BaseModel], Awaitable[BaseModel]]

BUDGET = 4.0
"""Seconds of pruning one request does before it answers `more` (a caller waits 10 s)."""

BUSY = (
    "history is being pruned right now by a store's background retention or another "
    "`jetjobs prune`: try again once it is done (each round ends with `store.pruned` in the store's log)"
)


class RetentionApi:
    """Pruning on demand, on a connection of its own (it holds the retention lock)."""

    def __init__(self, connect: Callable[[], Awaitable[Any]], pool: Any, on_batch: OnBatch) -> None:
        self._connect = connect
        self._pool = pool
        self._on_batch = on_batch

    def handlers(self) -> dict[str, Handler]:
        return {"history.prune": _typed("history.prune", PruneRequest, self.prune)}

    async def prune(self, request: PruneRequest) -> Pruned:
        if not token_admin.get():
            raise ApiFailure(403, f"only an actor with an admin token may prune history: {BOOTSTRAP_HINT}")
        horizons = Horizons.ago(request.older_than, request.audit_older_than)
        try:
            async with own_connection(self._connect) as conn:
                counts, more = await self._run(conn, horizons, request.dry_run)
        except StoreUnavailable:
            raise ApiFailure(
                503, "history.prune: the store cannot reach PostgreSQL right now; try again shortly"
            ) from None
        if counts.total and not request.dry_run:
            await audit(self._pool, "history.prune", None, _detail(request, counts))
            log.info("store.pruned", on_demand=True, more=more, **counts.model_dump())
        assert horizons.before is not None
        return Pruned(
            dry_run=request.dry_run,
            before=horizons.before,
            audit_before=horizons.audit,
            counts=counts,
            more=more,
        )

    async def _run(self, conn: Any, horizons: Horizons, dry_run: bool) -> tuple[PruneCounts, bool]:
        if dry_run:
            return await count(conn, horizons), False
        if not await try_lock(conn):
            raise ApiFailure(409, BUSY)
        return await prune(conn, horizons, BATCH, BUDGET, self._on_batch)


def _detail(request: PruneRequest, counts: PruneCounts) -> dict[str, Any]:
    kept = request.model_dump(exclude_none=True, exclude={"dry_run"})
    return {**kept, "removed": {k: v for k, v in counts if v}}
