"""The domain entities: applications, companies and run templates."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from pydantic import AfterValidator, Field, field_validator, model_validator

from .base import AwareDatetime, Code, EnvVars, Frozen, RecordedDatetime
from .enums import INTERVAL_CRON, Interval
from .lifecycle import ExitCodes
from .schedule import Misfire, Overlap


class EnvField(Frozen):
    """An environment variable an application declares."""

    type: str = "string"
    description: str = ""
    default: str | None = None
    required: bool = False
    secret: bool = False


class ArtifactSpec(Frozen):
    """A file an application leaves behind: a path or glob relative to the job's working directory."""

    path: str = Field(min_length=1)
    name: str = ""
    content_type: str = ""
    description: str = ""

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError(f"artifact path {value!r} must stay inside the job's working directory")
        return value


class Application(Frozen):
    """A packaged executable, as imported from a MultiFlexi app file."""

    id: int | None = None
    uuid: str
    name: str = Field(min_length=1)
    description: str = ""
    executable: str = Field(min_length=1)
    cmdparams: str = ""
    environment: dict[str, EnvField] = {}
    ociimage: str = ""
    homepage: str = ""
    tags: list[str] = []
    artifacts: list[ArtifactSpec] = []
    exit_codes: ExitCodes | None = None


class Company(Frozen):
    """A tenant; its code names it in subjects, logs and the CLI."""

    id: int | None = None
    code: Code
    name: str = Field(min_length=1)
    enabled: bool = True
    paused: bool = Field(default=False, description="every template paused (`jetjobs company pause`)")


MAX_TIMEOUT = 315_360_000.0
"""Ten years (3650 days) in seconds: the longest any timeout may be. Far beyond any
real job, yet a deadline computed from it (dispatch time plus timeout) stays a
valid date for every instant a message may carry (see `base.LATEST`)."""

MIN_TIMEOUT_ACK = 1.0
"""The shortest `timeout_ack`, in seconds: an executor that takes longer hands the
message back, so a shorter one (0.0001) hands back nearly every delivery at once."""

MAX_RETRIES = 100
MAX_JITTER = 3600.0
MAX_CATCH_UP = 1000
"""Bounds a template's retries, jitter (seconds) and catch-up limit always had; the
board's copy (`ActiveTemplate`) keeps them too, so no slot time or run horizon overflows."""

Timeout = Annotated[float, Field(gt=0, le=MAX_TIMEOUT)]
"""Seconds a job message may give a step of its lifecycle."""

AckTimeout = Annotated[float, Field(ge=MIN_TIMEOUT_ACK, le=MAX_TIMEOUT)]
"""Seconds a job message gives an executor to acknowledge it."""


class Timeouts(Frozen):
    """The three lifecycle timeouts of a job message, in seconds.

    New values must be `bounded()` (a new or changed template, a run): every one
    at most MAX_TIMEOUT, `timeout_ack` at least MIN_TIMEOUT_ACK. The fields alone
    accept any positive number because the store builds this from template rows,
    and a template saved before the bounds must still load (to be listed and
    fixed); the scheduler skips such a template and no job message can carry it."""

    timeout: float = Field(
        default=3600.0, gt=0, description="dispatch → taken by an executor; at most 315360000 (ten years)"
    )
    timeout_ack: float = Field(
        default=30.0, gt=0, description="received → acknowledged; from 1 to 315360000 (ten years)"
    )
    timeout_result: float = Field(
        default=3600.0, gt=0, description="acknowledged → result; at most 315360000 (ten years)"
    )

    def bounded(self) -> Timeouts:
        """These timeouts if every one is within its bounds; else ValueError naming the first that is not."""
        for name in ("timeout", "timeout_ack", "timeout_result"):
            value = getattr(self, name)
            if not value <= MAX_TIMEOUT:
                raise ValueError(
                    f"{name} {value:.15g} s is too long: give at most {MAX_TIMEOUT:.0f} s (ten years)"
                )
        if self.timeout_ack < MIN_TIMEOUT_ACK:
            raise ValueError(
                f"timeout_ack {self.timeout_ack:.15g} s is too short: give at least {MIN_TIMEOUT_ACK:g} s "
                "(an executor needs that long to acknowledge a job)"
            )
        return self


BoundedTimeouts = Annotated[Timeouts, AfterValidator(Timeouts.bounded)]
"""Timeouts a request gives now: checked against the bounds (see `Timeouts`)."""


def cron_for(interv: Interval, cron: str | None) -> str | None:
    """The cron expression a template fires on; None for `n` (manual only)."""
    if interv is Interval.NONE:
        return None
    if interv is Interval.CUSTOM:
        return cron
    return INTERVAL_CRON[interv]


@functools.lru_cache(maxsize=1024)
def check_cron(expression: str) -> str:
    """Validate 5-field cron, or 6 fields with seconds first. Cached: croniter takes
    about 0.3 ms for each, and every template row read back is validated (10,000
    templates sharing a few expressions took 3 s of the store's start)."""
    fields = expression.split()
    if len(fields) not in (5, 6) or not croniter.is_valid(expression, second_at_beginning=len(fields) == 6):
        raise ValueError(
            f"invalid cron expression {expression!r}: use 5 fields "
            "(minute hour day month weekday) or 6 with seconds first"
        )
    return expression


@functools.lru_cache(maxsize=1024)
def check_fires(expression: str) -> str:
    """Refuse a valid cron expression that matches no date at all (`0 0 30 2 *`):
    accepted, it would never run and could not be explained."""
    try:
        croniter(
            expression, datetime(2000, 1, 1), second_at_beginning=len(expression.split()) == 6
        ).get_next()
    except CroniterBadDateError:
        raise ValueError(never_fires(expression)) from None
    return expression


def never_fires(expression: str) -> str:
    """Why a cron expression has no slot, and what to change."""
    return (
        f"cron expression {expression!r} never fires: no date has the day of month and month "
        "it names (such as 30 February); change its day or month field"
    )


class UnknownZone(ValueError):
    """A time zone name this host's time zone database does not hold."""

    def __init__(self, zone: str) -> None:
        super().__init__(f"unknown timezone {zone!r}: use an IANA name such as Europe/Prague")
        self.zone = zone


def check_timezone(name: str) -> str:
    """Validate an IANA timezone name."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownZone(name) from None
    return name


class TemplateSpec(Frozen):
    """What a user says to create or replace a run template."""

    name: str = Field(min_length=1)
    app: str | None = Field(default=None, min_length=1, description="application id or uuid")
    flow: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="a saved flow of the company, run at every fire",
    )
    company: Code
    interv: Interval = Interval.NONE
    cron: str | None = None
    timezone: str = "UTC"
    env: EnvVars = {}
    pool: Code = "default"
    timeouts: Timeouts = Timeouts()
    retries: int = Field(default=0, ge=0, le=MAX_RETRIES)
    active: bool = True
    overlap: Overlap = Overlap.FORBID
    misfire: Misfire = Misfire.SKIP
    catch_up_limit: int = Field(
        default=10, ge=1, le=MAX_CATCH_UP, description="most missed slots `catch_up` runs"
    )
    jitter: float = Field(
        default=0.0, ge=0, le=MAX_JITTER, description="up to this many seconds of start delay"
    )
    paused: bool = False

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        check_cron(value)
        # A stored template (a subclass) loads as it was accepted, so one saved before
        # this check still lists and can be fixed; a new or changed spec must fire.
        return check_fires(value) if cls is TemplateSpec else value

    @field_validator("timeouts")
    @classmethod
    def _timeouts(cls, value: Timeouts) -> Timeouts:
        # As for cron: a stored template loads with the timeouts it was saved with,
        # so one saved before the bounds still lists and can be fixed.
        return value.bounded() if cls is TemplateSpec else value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return check_timezone(value)

    @model_validator(mode="before")
    @classmethod
    def _flow_overlap(cls, data: Any) -> Any:
        """Every fire of a flow template is a new flow run: overlap is `allow` unless said."""
        if isinstance(data, dict) and data.get("flow") and "overlap" not in data:
            return {**data, "overlap": Overlap.ALLOW.value}
        return data

    @model_validator(mode="after")
    def _runs_one_thing(self) -> TemplateSpec:
        if (self.app is None) == (self.flow is None):
            raise ValueError("give exactly one of `app` (an application) or `flow` (a saved flow)")
        if self.flow is not None and self.overlap is not Overlap.ALLOW:
            raise ValueError(
                "a flow template starts a new flow run at every fire: its overlap must be 'allow'"
            )
        return self

    @model_validator(mode="after")
    def _cron_matches_interval(self) -> TemplateSpec:
        if self.interv is Interval.CUSTOM and not self.cron:
            raise ValueError("interval 'c' (custom) needs a cron expression")
        if self.interv is not Interval.CUSTOM and self.cron:
            raise ValueError(f"a cron expression needs interval 'c', not {self.interv.value!r}")
        return self

    @model_validator(mode="after")
    def _jitter_within_a_gap(self) -> TemplateSpec:
        """A start delay as long as the time between two slots would start a slot after
        the next one is due (out of order, recorded late). Checked for a new or changed
        spec: a stored template (a subclass) loads as it was accepted, to be fixed."""
        cron = cron_for(self.interv, self.cron)
        if type(self) is not TemplateSpec or not self.jitter or not cron:
            return self
        from .cron import shortest_gap  # cron builds on this module

        gap = shortest_gap(cron, self.timezone, datetime.now(UTC))
        if gap is not None and self.jitter >= gap:
            raise ValueError(
                f"jitter {self.jitter:g} s is not shorter than the {gap:g} s between this schedule's "
                f"slots: a slot would start after the next one is due; give less than {gap:g} s"
            )
        return self


class RunTemplate(TemplateSpec):
    """A stored template: the spec with its identity and resolved application."""

    id: int
    app_id: int | None = None
    env: dict[str, str] = Field(
        default={}, description="as stored: one saved before names were checked still lists and can be fixed"
    )
    deleted_at: RecordedDatetime | None = Field(
        default=None,
        description="when it was deleted: it no longer runs or changes, and its history stays readable",
    )


class ActiveTemplate(Frozen):
    """The scheduler's view of a template, as projected into the templates KV."""

    id: int
    revision: str = Field(description="changes whenever the template or its app changes")
    name: str
    company: Code
    pool: Code
    app_id: int | None = None
    executable: str = Field(default="", description="empty for a flow template")
    cmdparams: str = ""
    env: dict[str, str] = {}
    cron: str
    timezone: str = "UTC"
    timeouts: Timeouts = Field(
        default=Timeouts(),
        description="as stored: the scheduler skips a template whose timeouts are out of bounds",
    )
    retries: int = Field(default=0, ge=0, le=MAX_RETRIES)
    secrets: list[str] = Field(
        default=[], description="variables filled from company credentials at run time"
    )
    required: list[str] = Field(default=[], description="variables that must be set for a run to start")
    masked: list[str] | None = Field(
        default=None,
        description="variables the application declares secret: masked in the job's output "
        "(absent when none, so a template without any reads as before)",
    )
    artifacts: list[ArtifactSpec] = []
    exit_codes: ExitCodes | None = None
    image: str = Field(default="", description="the application's OCI image (`ociimage`)")
    overlap: Overlap = Overlap.FORBID
    misfire: Misfire = Misfire.SKIP
    catch_up_limit: int = Field(default=10, ge=1, le=MAX_CATCH_UP)
    jitter: float = Field(default=0.0, ge=0, le=MAX_JITTER)
    paused: bool = Field(default=False, description="the template or its company is paused")
    flow: str | None = Field(default=None, description="the flow a fire starts instead of a job")
    scheduled_since: AwareDatetime | None = Field(
        default=None,
        description="when the template was last put on the schedule (created or made active, or given "
        "a new schedule): a misfire policy owes no slot from before it",
    )
