"""Scheduling policies and the record every slot of a template leaves behind."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from .base import AwareDatetime, Code, Frozen, JobId, RecordedDatetime


class Overlap(StrEnum):
    """What a slot does while the template's previous run is still active."""

    FORBID = "forbid"
    """Skip the slot (recorded as skipped, reason `overlap`)."""
    ALLOW = "allow"
    """Start another run beside it."""
    REPLACE = "replace"
    """Cancel the running one, then start the new one."""


class Misfire(StrEnum):
    """What happens to slots missed while the scheduler was down or the template paused."""

    SKIP = "skip"
    """Record them as skipped and wait for the next future slot."""
    FIRE_ONCE = "fire_once"
    """One run now, for the latest missed slot; the others are recorded as skipped."""
    CATCH_UP = "catch_up"
    """Run every missed slot, the latest `catch_up_limit` of them; older ones are skipped."""


class SlotOutcome(StrEnum):
    """What happened to one slot."""

    FIRED = "fired"
    LATE = "late"
    """Fired, but later than the scheduler's tolerance after its due time."""
    SKIPPED = "skipped"


class SlotReason(StrEnum):
    """Why a slot was skipped (or how a late/extra one came to fire)."""

    PAUSED = "paused"
    OVERLAP = "overlap"
    MISFIRE = "misfire"
    DEDUPLICATED = "deduplicated"
    INVALID = "invalid"


class Trigger(StrEnum):
    """What made the slot fire (or be considered)."""

    SCHEDULE = "schedule"
    FIRE_ONCE = "fire_once"
    CATCH_UP = "catch_up"
    BACKFILL = "backfill"


class SlotRecord(Frozen):
    """One slot of one template, published to `jetjobs.slots.<company>.<template>.<source>`."""

    template_id: int
    company: Code
    slot: AwareDatetime
    outcome: SlotOutcome
    reason: SlotReason | None = None
    detail: str | None = Field(default=None, description="human words for the reason")
    trigger: Trigger = Trigger.SCHEDULE
    job_id: JobId | None = None
    flow_run: str | None = Field(default=None, description="the flow run a flow template's slot started")
    scheduled_at: AwareDatetime | None = Field(default=None, description="slot plus the template's jitter")
    lateness: float | None = Field(
        default=None, description="seconds from its scheduled time to its message being written to NATS"
    )
    recorded_at: AwareDatetime
    scheduler: str | None = None
    anchor: AwareDatetime | None = Field(
        default=None, description="the latest slot the schedule has run through (paused slots excluded)"
    )
    running_job: JobId | None = Field(
        default=None, description="the template's run still active when this was recorded"
    )


class CompanyRef(Frozen):
    code: Code


class CompanyPaused(Frozen):
    code: Code
    paused: bool
    templates: int = Field(description="templates of the company on the schedule")


class Backfill(Frozen):
    """Run a template's slots in (start, end] that have not run yet."""

    id: int = Field(description="template id")
    start: AwareDatetime
    end: AwareDatetime
    limit: int = Field(default=1000, ge=1, le=10000, description="most slots one backfill may run")


class BackfillSlot(Frozen):
    slot: AwareDatetime
    job_id: JobId


class BackfillReply(Frozen):
    template_id: int
    queued: list[BackfillSlot]
    deduplicated: list[BackfillSlot] = Field(description="slots that had already run: left alone")


class ExplainRequest(Frozen):
    id: int = Field(description="template id")
    next: int = Field(default=5, ge=0, le=100, description="upcoming fire times to list")
    last: int = Field(default=10, ge=0, le=500, description="latest recorded slots to list")


class SlotView(Frozen):
    """A recorded slot with its job's outcome so far."""

    record: SlotRecord
    job_status: str | None = None
    job_kind: str | None = None
    job_final: bool | None = None
    flow_status: str | None = Field(default=None, description="the status of the slot's flow run")


class Explanation(Frozen):
    """Everything `jetjobs template explain` prints: why a template runs, or does not."""

    template_id: int
    name: str
    company: Code
    cron: str | None = Field(description="the schedule; None for manual-only (`n`)")
    timezone: str
    active: bool
    paused: bool
    company_paused: bool
    company_enabled: bool
    deleted_at: RecordedDatetime | None = Field(
        default=None, description="when the template was deleted: it never fires again"
    )
    overlap: Overlap
    misfire: Misfire
    jitter: float
    leader: str | None = Field(description="the scheduler holding the lease, None when none leads")
    next: list[AwareDatetime] = []
    slots: list[SlotView] = []
