"""The domain entities: applications, companies and run templates."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from pydantic import Field, field_validator, model_validator

from .base import Code, Frozen
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


class Timeouts(Frozen):
    """The three lifecycle timeouts of a job message, in seconds."""

    timeout: float = Field(default=3600.0, gt=0, description="dispatch → taken by an executor")
    timeout_ack: float = Field(default=30.0, gt=0, description="received → acknowledged")
    timeout_result: float = Field(default=3600.0, gt=0, description="acknowledged → result")


def cron_for(interv: Interval, cron: str | None) -> str | None:
    """The cron expression a template fires on; None for `n` (manual only)."""
    if interv is Interval.NONE:
        return None
    if interv is Interval.CUSTOM:
        return cron
    return INTERVAL_CRON[interv]


def check_cron(expression: str) -> str:
    """Validate 5-field cron, or 6 fields with seconds first."""
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


def check_timezone(name: str) -> str:
    """Validate an IANA timezone name."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {name!r}: use an IANA name such as Europe/Prague") from None
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
    env: dict[str, str] = {}
    pool: Code = "default"
    timeouts: Timeouts = Timeouts()
    retries: int = Field(default=0, ge=0, le=100)
    active: bool = True
    overlap: Overlap = Overlap.FORBID
    misfire: Misfire = Misfire.SKIP
    catch_up_limit: int = Field(default=10, ge=1, le=1000, description="most missed slots `catch_up` runs")
    jitter: float = Field(default=0.0, ge=0, le=3600, description="up to this many seconds of start delay")
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


class RunTemplate(TemplateSpec):
    """A stored template: the spec with its identity and resolved application."""

    id: int
    app_id: int | None = None


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
    timeouts: Timeouts = Timeouts()
    retries: int = 0
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
    catch_up_limit: int = 10
    jitter: float = 0.0
    paused: bool = Field(default=False, description="the template or its company is paused")
    flow: str | None = Field(default=None, description="the flow a fire starts instead of a job")
