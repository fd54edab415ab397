"""Runners, exit-code classes, cancels and dead-letter requests: the lifecycle's own contracts."""

from __future__ import annotations

from pydantic import Field, model_validator

from .base import INT8_MAX, AwareDatetime, Code, Frozen, JobId, RecordedDatetime


class ExitCodes(Frozen):
    """Which exit codes mean what, per application (MultiFlexi `exitCodes`).

    A code in `success` ends the job `processed`; one in `final` ends it in
    `error` without retry; one in `retry` (or any other non-success code, when
    `retry` is empty) is worth another attempt within the retry budget."""

    success: list[int] = [0]
    retry: list[int] = []
    final: list[int] = []

    @model_validator(mode="after")
    def _disjoint(self) -> ExitCodes:
        success, retry, final = set(self.success), set(self.retry), set(self.final)
        overlap = (success & retry) | (success & final) | (retry & final)
        if overlap:
            raise ValueError(f"exit codes {sorted(overlap)} are in more than one class: list each code once")
        return self


class RunnerInfo(Frozen):
    """A live executor, as its heartbeat announces it in the runners bucket."""

    id: str = Field(min_length=1)
    host: str
    pool: Code
    pid: int
    slots: int = Field(ge=1)
    running: list[JobId] = []
    started_at: AwareDatetime
    at: AwareDatetime = Field(description="when this heartbeat was sent")


class RunnerList(Frozen):
    runners: list[RunnerInfo]


class RunnerQuery(Frozen):
    pool: Code | None = None


class CancelReply(Frozen):
    job_id: JobId
    company: Code
    state: str = Field(
        description=(
            "what the cancel found: `queued` (ended now, it never runs), `running` (its process is "
            "being killed), or `taken` (an executor has it or its next attempt: it refuses or kills it, "
            "and reports how it ended)"
        )
    )


class DeadLetterQuery(Frozen):
    company: Code | None = None
    limit: int = Field(default=50, ge=1, le=1000)
    before: int | None = Field(
        default=None,
        ge=1,
        le=INT8_MAX,
        description="the id of the last dead letter of the previous page: the older ones follow it",
    )


class DeadLetterSummary(Frozen):
    """A dead letter as `dlq.list` gives it: without its message, which may be as large
    as a NATS message itself (`dlq.get` gives it)."""

    id: int
    company: str
    job_id: str | None = None
    reason: str
    subject: str
    at: RecordedDatetime
    replayed_as: int | None = Field(default=None, description="the attempt a replay started")
    size: int = Field(description="bytes of the original message")


class DeadLetterRecord(DeadLetterSummary):
    """A dead letter as recorded in Postgres, with its original message and headers."""

    payload: str
    headers: dict[str, str] = {}


class DeadLetterList(Frozen):
    dead_letters: list[DeadLetterSummary]
    more: bool = False
    """Older dead letters follow: ask again with `before` set to the last one's id."""


class DeadLetterRef(Frozen):
    id: int = Field(ge=1, le=INT8_MAX)


class Replayed(Frozen):
    job_id: JobId
    company: Code
    attempt: int
