"""`history.prune`: an operator removes (or counts) old history on demand. It spans
every company, so only an admin token may ask."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from pydantic import BaseModel

from bus.api import current_actor
from contracts.api import ApiFailure
from contracts.retention import PRUNE_BUDGET, PruneCounts, Pruned, PruneRequest

from .api import _typed
from .errors import StoreUnavailable
from .retention import BATCH, AuditTrail, Horizons, OnBatch, count, own_connection, prune, try_lock
from .tokens import BOOTSTRAP_HINT, token_admin

log = structlog.get_logger("jetjobs.store")

Handler = Callable[[BaseModel], Awaitable[BaseModel]]

BUSY = (
    "history is being pruned right now by a store's background retention or another "
    "`jetjobs prune`: try again once it is done (each round ends with `store.pruned` in the store's log)"
)


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
        try:
            async with own_connection(self._connect) as conn:
                horizons = await Horizons.by_postgres(conn, request.older_than, request.audit_older_than)
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
        asked = request.model_dump(exclude_none=True, exclude={"dry_run"})
        trail = AuditTrail(current_actor.get(), "history.prune", asked, horizons)
        return await prune(conn, horizons, BATCH, PRUNE_BUDGET, self._on_batch, trail)
