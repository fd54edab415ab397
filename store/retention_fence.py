"""Keeping pruned jobs pruned: a late message of a job retention removed (an
event redelivered, a job message the store records late) must not bring back a
bare row of it.

Retention records the newest horizon it prunes to before it removes anything
(`mark_horizon`). A message older than that horizon, of a job the store has no
row of, is of a job already pruned (or of one whose history passed the
retention before the store could record it): it is dropped, acked and counted,
never dead-lettered, since nothing is wrong with it. Only a message older than
the shortest horizon (`SHORTEST`) can be one, so every other message costs one
comparison and no query.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from bus import Delivery
from contracts.retention import SHORTEST

from .db import Db
from .queries import Queries
from .retention import retention_sql

log = structlog.get_logger("jetjobs.store")

YOUNGEST_PRUNED = timedelta(seconds=SHORTEST)
"""No horizon is newer than this long ago: a younger message is never of a pruned job."""

LOGGED_IDS = 10
"""Job ids a log line names at most (a store catching up may drop a whole batch)."""


@dataclass(frozen=True)
class PrunedFence:
    """Drops the messages of pruned jobs from a batch, before it is written. `time`
    says when a message was made (an event's `at`, a job message's `dispatched_at`)."""

    time: Callable[[Any], datetime]

    async def admit(self, conn: Db, batch: Sequence[Delivery[Any]], feed: str) -> Sequence[Delivery[Any]]:
        """The batch without the messages of pruned jobs, inside the batch's transaction.
        The batch's jobs are locked first, as their writer locks them: one that has a
        row keeps it until the commit (retention skips locked rows); one that has none
        was pruned by a transaction that committed its horizon before, which the
        following statement reads."""
        cutoff, time = datetime.now(UTC) - YOUNGEST_PRUNED, self.time
        old = [d for d in batch if time(d.payload) < cutoff]
        if not old:
            return batch
        held = (await Queries(conn).lock_jobs(sorted({d.payload.job_id for d in batch}))).companies
        absent = [d for d in old if d.payload.job_id not in held]
        if not absent:
            return batch
        horizon = await conn.fetchval(retention_sql()["pruned_before"].sql)
        dropped = {id(d) for d in absent if horizon is not None and time(d.payload) < horizon}
        if not dropped:
            return batch
        log.info(
            "store.pruned_job_messages_dropped",
            consumer=feed,
            messages=len(dropped),
            job_ids=sorted({d.payload.job_id for d in absent if id(d) in dropped})[:LOGGED_IDS],
            pruned_before=horizon.isoformat(),
        )
        return [d for d in batch if id(d) not in dropped]
