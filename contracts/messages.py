"""The messages on the bus: job messages, lifecycle events, dead letters."""

from __future__ import annotations

from pydantic import Field

from .base import INT4_MAX, AwareDatetime, Code, Frozen, Int8, JobEnv, JobId
from .enums import ErrorKind, Status
from .lifecycle import ExitCodes
from .models import MAX_RETRIES, MAX_TIMEOUT, AckTimeout, ArtifactSpec, Timeout

MAX_FIRST_ATTEMPT = 1_000_000_000
"""The highest attempt a message may start at: every redelivery is one more, and
attempts are stored as Postgres `integer` (up to 2,147,483,647)."""


class JobMessage(Frozen):
    """A job due to run, published to `jetjobs.dispatch.<company>.<pool>`."""

    job_id: JobId
    company: Code
    pool: Code = "default"
    template_id: Int8 | None = None
    app_id: Int8 | None = None
    argv: list[str] = Field(min_length=1, description="executable and arguments; never a shell string")
    env: JobEnv = {}
    scheduled_at: AwareDatetime
    dispatched_at: AwareDatetime
    timeout: Timeout = Field(
        description="seconds from dispatch within which an executor must take it; at most ten years"
    )
    timeout_ack: AckTimeout = Field(
        description="seconds from receipt to acknowledgement; from 1 s to ten years"
    )
    timeout_result: Timeout = Field(
        description="seconds from acknowledgement to the result; at most ten years"
    )
    retries: int = Field(default=0, ge=0, le=MAX_RETRIES, description="automatic re-runs after an error")
    attempt: int = Field(
        default=1, ge=1, le=MAX_FIRST_ATTEMPT, description="attempt number of this message's first delivery"
    )
    launched_by: str = "scheduler"
    exit_codes: ExitCodes | None = Field(default=None, description="how the application's exit codes count")
    secrets: list[str] = Field(
        default=[],
        description="variables the executor fetches from the store just in time: names, never values",
    )
    masked: list[str] | None = Field(
        default=None,
        description=(
            "variables of `env` the application declares secret: the executor masks their values in "
            "everything the job prints, stored or streamed (values in `secrets` are masked anyway); "
            "absent when there are none, so a job without any reads as before"
        ),
    )
    required: list[str] = Field(default=[], description="variables that must be set, or the run is invalid")
    artifacts: list[ArtifactSpec] = Field(default=[], description="files to collect after the run")
    image: str = Field(default="", description="the application's OCI image, for container executors")


class JobEvent(Frozen):
    """One step of one attempt, published to `jetjobs.events.<company>.<job_id>`."""

    job_id: JobId
    company: Code
    attempt: int = Field(ge=1, le=INT4_MAX, description="the fencing token: later attempts supersede earlier")
    status: Status
    at: AwareDatetime
    runner: str | None = None
    pid: Int8 | None = None
    exit_code: Int8 | None = None
    kind: ErrorKind | None = None
    reason: str | None = None
    begin: AwareDatetime | None = None
    end: AwareDatetime | None = None
    stdout: str | None = None
    stderr: str | None = None
    final: bool = Field(default=False, description="no further attempt will follow this one")
    retry_in: float | None = Field(
        default=None, ge=0, le=MAX_TIMEOUT, description="seconds until the next attempt"
    )
    results: dict[str, str] = Field(
        default_factory=dict, description="what the job wrote to JETJOBS_RESULT_FILE"
    )


class DeadLetter(Frozen):
    """A message no executor could run, published to `jetjobs.dead.<company>`."""

    company: str
    job_id: str | None = None
    reason: str
    subject: str
    payload: str = Field(description="the original bytes, decoded as UTF-8 with replacement")
    headers: dict[str, str] = {}
    at: AwareDatetime
