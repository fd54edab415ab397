"""What the store answers about jobs: the queryable record."""

from __future__ import annotations

from .base import Frozen, RecordedDatetime
from .enums import ErrorKind, Status


class AttemptRecord(Frozen):
    """One attempt of a job, as recorded in Postgres."""

    attempt: int
    status: Status
    kind: ErrorKind | None = None
    runner: str | None = None
    pid: int | None = None
    exit_code: int | None = None
    reason: str | None = None
    begin: RecordedDatetime | None = None
    end: RecordedDatetime | None = None
    results: dict[str, str] = {}
    """What the job wrote to JETJOBS_RESULT_FILE in this attempt."""


class JobRecord(Frozen):
    """A job with its latest attempt's status and its final outcome."""

    id: str
    company: str
    pool: str | None = None
    template_id: int | None = None
    app_id: int | None = None
    status: Status
    kind: ErrorKind | None = None
    attempt: int
    final: bool
    argv: list[str] = []
    scheduled_at: RecordedDatetime | None = None
    dispatched_at: RecordedDatetime | None = None
    begin: RecordedDatetime | None = None
    end: RecordedDatetime | None = None
    exit_code: int | None = None
    pid: int | None = None
    runner: str | None = None
    reason: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    launched_by: str | None = None
    attempts: list[AttemptRecord] = []
