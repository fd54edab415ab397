"""The store's background retention: every few minutes, the store holding the
retention lock removes what is older than its configured horizons, audited as an
on-demand prune is (`AuditTrail`). Several stores may run: the others find the lock
taken and skip the round."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from contracts.retention import DAY

from .db import UNAVAILABLE
from .errors import StoreUnavailable
from .retention import AuditTrail, Horizons, OnBatch, Retention, own_connection, prune, try_lock

log = structlog.get_logger("jetjobs.store")

OUTAGE: tuple[type[BaseException], ...] = (*UNAVAILABLE, StoreUnavailable)


FIRST_ROUND = 30.0
"""Seconds from the start to the first round: out of the way of the start's own work."""
ACTOR = "store retention"
"""Who a background round's audit entry says pruned: no request, the store's own settings."""
ACTION = "history.retention"
"""A round's audit action: beside `history.prune`, the action of a prune on demand."""


async def keep_history(
    connect: Callable[[], Awaitable[Any]], policy: Retention, stopping: asyncio.Event, on_batch: OnBatch
) -> None:
    """Prune shortly after the start (a store restarted more often than `policy.every`
    would otherwise never prune), then every `policy.every` seconds until it stops."""
    wait = min(FIRST_ROUND, policy.every)
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), wait)
        if stopping.is_set():
            return
        wait = policy.every
        try:
            await prune_round(connect, policy, on_batch)
        except OUTAGE as error:
            log.warning("store.prune_waiting", error=str(error) or type(error).__name__)
        except Exception:
            log.exception("store.prune_failed")


async def prune_round(connect: Callable[[], Awaitable[Any]], policy: Retention, on_batch: OnBatch) -> bool:
    """One round; False when another store holds the retention lock."""
    async with own_connection(connect) as conn:
        if not await try_lock(conn):
            log.info("store.prune_skipped", reason="another store is pruning")
            return False
        horizons = await Horizons.by_postgres(
            conn,
            policy.days * DAY if policy.days else None,
            policy.audit_days * DAY if policy.audit_days else None,
        )
        started = asyncio.get_running_loop().time()
        trail = AuditTrail(ACTOR, ACTION, _settings(policy), horizons)
        counts, _ = await prune(conn, horizons, policy.batch, None, on_batch, trail)
    log.info(
        "store.pruned",
        before=horizons.before and horizons.before.isoformat(),
        audit_before=horizons.audit and horizons.audit.isoformat(),
        seconds=round(asyncio.get_running_loop().time() - started, 3),
        **counts.model_dump(),
    )
    return True


def _settings(policy: Retention) -> dict[str, Any]:
    """The horizons a round prunes by, as the store is configured with them."""
    return {
        name: days
        for name, days in (("retention_days", policy.days), ("audit_retention_days", policy.audit_days))
        if days
    }
