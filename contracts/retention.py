"""Retention: what the store removes of finished history, on its own or on demand
(`jetjobs.api.history.prune`)."""

from __future__ import annotations

from pydantic import Field

from .base import Frozen, RecordedDatetime

HOUR = 3600.0
DAY = 24 * HOUR
LONGEST = 36500 * DAY
"""A hundred years: a longer horizon would reach before any date Postgres keeps."""

SHORTEST = HOUR
"""History younger than an hour may still be in flight (late events, JetStream's
duplicate window): it is never pruned."""


class PruneRequest(Frozen):
    """Remove (or, dry, count) final history older than `older_than` seconds: jobs with
    their attempts, events, artifacts and output; finished flow runs; slot records;
    templates deleted before it that nothing left names; dead letters. The audit log
    is pruned only when `audit_older_than` is given."""

    older_than: float = Field(ge=SHORTEST, le=LONGEST, description="seconds")
    audit_older_than: float | None = Field(default=None, ge=SHORTEST, le=LONGEST, description="seconds")
    dry_run: bool = False


class PruneCounts(Frozen):
    """Rows removed (or that would be), by kind."""

    jobs: int = 0
    attempts: int = 0
    events: int = 0
    artifacts: int = 0
    deadlines: int = 0
    flow_runs: int = 0
    flow_nodes: int = 0
    slots: int = 0
    templates: int = 0
    dead_letters: int = 0
    audit_entries: int = 0

    def plus(self, other: PruneCounts) -> PruneCounts:
        return PruneCounts(**{k: v + getattr(other, k) for k, v in self})

    @property
    def total(self) -> int:
        return sum(v for _, v in self)


class Pruned(Frozen):
    """What one request removed, or would remove. A prune stops after a few seconds
    of work and says `more` when old history is left: ask again (the CLI does)."""

    dry_run: bool
    before: RecordedDatetime
    """The horizon: history that ended before it is removed."""
    audit_before: RecordedDatetime | None = None
    counts: PruneCounts
    more: bool = False


PRUNE_BUDGET = 4.0
"""Seconds of pruning one `history.prune` request does before it answers `more` (a
caller waits 10 s by default; `jetjobs prune` gives it a little longer)."""

COUNT_TIMEOUT = 300.0
"""Seconds a dry run's count may take (it reads every row it counts)."""
