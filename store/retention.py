"""Retention: removing final history older than a horizon, a small batch per
statement and oldest first, so no statement holds its locks for long and the
projection of new events never waits on a prune. Rows a writer holds are
skipped and taken by a later batch."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from contracts.retention import COUNT_TIMEOUT, DAY, LONGEST, PruneCounts

from .loader import Query, parse_queries

RETENTION_LOCK = 0x6A6A726574
"""The advisory lock key ("jjret") a store holds while it prunes: one at a time."""

BATCH = 2000
"""Rows one statement removes at most (a job's attempts, events, artifacts and sealed secret values go with it)."""

REST = 1.0
"""After each batch, a prune waits this many times as long as the batch took: it uses
at most half of one connection's time, whatever the backlog."""

STEPS = (
    ("prune_flow_runs", "count_flow_runs", "flow_runs"),
    ("prune_jobs", "count_jobs", "jobs"),
    ("prune_slots", "count_slots", "slots"),
    ("prune_templates", "count_templates", "templates"),
    ("prune_dead_letters", "count_dead_letters", "dead_letters"),
)
"""Each kind's prune, its count, and the kind whose rows fill a batch. Flow runs go
first: the jobs of a run that ended before the horizon are then free to go too;
deleted templates after the jobs and slot records that name them."""

AUDIT_STEP = ("prune_audit", "count_audit", "audit_entries")

OnBatch = Callable[[PruneCounts], None]

Record = Callable[[Any, PruneCounts], Awaitable[None]]
"""Called on a prune's connection, inside each batch's transaction, with what the prune
has removed so far: what it writes commits with the batch, or neither does."""


class RetentionError(ValueError):
    """A retention setting is out of range; the message names it and the fix."""


@functools.cache
def retention_sql() -> dict[str, Query]:
    """Every query of `store/sql/retention.sql`, read once."""
    text = resources.files("store").joinpath("sql", "retention.sql").read_text(encoding="utf-8")
    return parse_queries(text)


def _days(name: str, days: int) -> int:
    if not 0 <= days <= LONGEST / DAY:
        raise RetentionError(
            f"{name}={days}: give a number of days from 1 to {LONGEST / DAY:.0f}, or 0 to keep everything"
        )
    return days


@dataclass(frozen=True)
class Retention:
    """How long the store keeps final history (`days`) and the audit log
    (`audit_days`); 0 keeps it for ever. The store prunes every `every` seconds."""

    days: int = 0
    audit_days: int = 0
    every: float = 300.0
    batch: int = BATCH

    def __post_init__(self) -> None:
        _days("JETJOBS_RETENTION_DAYS", self.days)
        _days("JETJOBS_AUDIT_RETENTION_DAYS", self.audit_days)

    @property
    def active(self) -> bool:
        return bool(self.days or self.audit_days)


@dataclass(frozen=True)
class Horizons:
    """History that ended before `before` goes; audit entries before `audit`, when set."""

    before: datetime | None
    audit: datetime | None

    @classmethod
    def ago(cls, seconds: float | None, audit_seconds: float | None, now: datetime | None = None) -> Horizons:
        now = now or datetime.now(UTC)
        return cls(
            None if seconds is None else now - timedelta(seconds=seconds),
            None if audit_seconds is None else now - timedelta(seconds=audit_seconds),
        )

    @classmethod
    async def by_postgres(cls, conn: Any, seconds: float | None, audit_seconds: float | None) -> Horizons:
        """Horizons counted back from PostgreSQL's clock, the one that dates the rows a
        prune compares (`updated_at`), whatever the clock of the store's host says."""
        now: datetime = await conn.fetchval(retention_sql()["now"].sql)
        return cls.ago(seconds, audit_seconds, now)

    def named(self) -> dict[str, str]:
        """The horizons set, as an audit entry gives them."""
        return {
            name: at.isoformat() for name, at in (("before", self.before), ("audit_before", self.audit)) if at
        }

    def steps(self) -> list[tuple[tuple[str, str, str], datetime]]:
        found = [(step, self.before) for step in STEPS if self.before is not None]
        if self.audit is not None:
            found.append((AUDIT_STEP, self.audit))
        return found


@functools.cache
def audit_sql() -> dict[str, Query]:
    """Every query of `store/sql/retention_audit.sql`, read once."""
    text = resources.files("store").joinpath("sql", "retention_audit.sql").read_text(encoding="utf-8")
    return parse_queries(text)


class AuditTrail:
    """The audit entry of one prune (a `history.prune` request, a background round):
    who pruned, as asked how, the horizons, and how many rows of each kind went. It is
    written with the first batch that removes anything and updated with each later one,
    in that batch's transaction (`Record`): a prune cut short (a store killed, Postgres
    gone) leaves an entry for exactly what it removed."""

    def __init__(self, actor: str, action: str, asked: dict[str, Any], horizons: Horizons) -> None:
        self._actor = actor
        self._action = action
        self._asked = {**asked, **horizons.named()}
        self._entry: int | None = None

    async def __call__(self, conn: Any, removed: PruneCounts) -> None:
        detail = json.dumps({**self._asked, "removed": {k: v for k, v in removed if v}})
        if self._entry is None:
            self._entry = await conn.fetchval(
                audit_sql()["open_prune_entry"].sql, self._actor, self._action, detail
            )
        else:
            await conn.execute(audit_sql()["update_prune_entry"].sql, self._entry, detail)


def _counts(row: Any) -> PruneCounts:
    return PruneCounts(**{key: int(value) for key, value in row.items() if key in PruneCounts.model_fields})


async def prune(
    conn: Any,
    horizons: Horizons,
    batch: int,
    budget: float | None,
    on_batch: OnBatch,
    record: Record | None = None,
) -> tuple[PruneCounts, bool]:
    """Remove what is older than `horizons`, a batch per statement (each its own
    transaction, which `record` joins when a batch removed anything); stop after
    `budget` seconds when given. Returns what went, and whether old history is left.
    The horizon is recorded first, committed before any job goes: the projections
    drop the late messages of the jobs it removes."""
    loop = asyncio.get_running_loop()
    deadline = None if budget is None else loop.time() + budget
    total = PruneCounts()
    sql = retention_sql()
    if horizons.before is not None:
        await conn.execute(sql["mark_horizon"].sql, horizons.before)
    for (name, _, kind), horizon in horizons.steps():
        while True:
            started = loop.time()
            async with conn.transaction():
                got = _counts(await conn.fetchrow(sql[name].sql, horizon, batch))
                if record is not None and got.total:
                    await record(conn, total.plus(got))
            total = total.plus(got)
            on_batch(got)
            if getattr(got, kind) < batch:
                break
            if deadline is not None and loop.time() >= deadline:
                return total, True
            await asyncio.sleep((loop.time() - started) * REST)
    return total, False


async def count(conn: Any, horizons: Horizons) -> PruneCounts:
    """What `prune` would remove now, counted in one snapshot."""
    total = PruneCounts()
    sql = retention_sql()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for (_, name, _), horizon in horizons.steps():
            total = total.plus(_counts(await conn.fetchrow(sql[name].sql, horizon, timeout=COUNT_TIMEOUT)))
    return total


async def try_lock(conn: Any) -> bool:
    """Take the retention lock for this session (released when it closes)."""
    return bool(await conn.fetchval(retention_sql()["try_lock"].sql, RETENTION_LOCK))


@asynccontextmanager
async def own_connection(connect: Callable[[], Awaitable[Any]]) -> AsyncIterator[Any]:
    """A connection of its own for a prune: the retention lock is a session's, which a
    pooled connection must not keep. Closing it releases the lock; a prune cut short
    (a stop, an error) drops it at once, and its batch in hand is rolled back."""
    conn = await connect()
    try:
        yield conn
    except BaseException:
        conn.terminate()
        raise
    await conn.close()
