"""When a retry must be taken by: the executor's gate and the store's fold, without servers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from contracts.enums import ErrorKind, Status
from contracts.messages import JobEvent
from executor.gate import expired
from store.documents import retries
from store.lifecycle import AttemptState, plan
from store.reaper import LOST_LIMIT, lost_event
from tests.unit.jobs import NOW, message

AT = datetime(2026, 1, 1, tzinfo=UTC)


def event(status: Status, attempt: int = 1, job: str = "j1", **fields: object) -> JobEvent:
    return JobEvent.model_validate(
        {"job_id": job, "company": "acme", "attempt": attempt, "status": status, "at": AT, **fields}
    )


def test_a_retry_is_late_past_its_timeout_from_when_it_was_due() -> None:
    due = NOW + timedelta(hours=1)
    assert expired(message(), 2, due + timedelta(seconds=60), retry_due=due) is None
    reason = expired(message(), 2, due + timedelta(seconds=61), retry_due=due)
    assert reason is not None and reason.startswith(
        "no executor of pool `default` took the retry within 60 s of when it was due"
    )
    assert expired(message(), 2, NOW + timedelta(days=1)) is None, "a redelivery with no known due time"


def test_an_error_announcing_a_retry_gives_the_job_its_due_time() -> None:
    failed = event(Status.ERROR, kind=ErrorKind.EXIT, retry_in=1.5)
    changes = plan({"j1": AttemptState(1, Status.STARTED)}, [failed])
    assert changes.retries == {"j1": (1, AT + timedelta(seconds=1.5))}
    due_micros = int((AT + timedelta(seconds=1.5)).timestamp() * 1_000_000)
    assert json.loads(retries(changes)) == [["j1", 1, due_micros]]


def test_no_due_time_for_a_final_error_or_a_job_that_moved_on() -> None:
    final = plan({}, [event(Status.ERROR, kind=ErrorKind.EXIT, final=True)])
    assert final.retries == {} and retries(final) == "[]"
    moved_on = plan(
        {}, [event(Status.ERROR, kind=ErrorKind.EXIT, retry_in=1.0), event(Status.ACKNOWLEDGED, 2)]
    )
    assert json.loads(retries(moved_on)) == [], "the retry was taken in the same batch"
    succeeded = plan({}, [event(Status.PROCESSED, final=True)])
    assert succeeded.retries == {}


def test_an_attempt_the_reaper_rules_lost_makes_the_next_one_due_at_once() -> None:
    row = {"id": "j1", "company": "acme", "attempt": 1, "runner": "gone", "status": "started"}
    lost = lost_event(row)
    assert (lost.kind, lost.final, lost.retry_in) == (ErrorKind.LOST, False, 0.0)
    changes = plan({"j1": AttemptState(1, Status.STARTED)}, [lost])
    assert changes.retries == {"j1": (1, lost.at)}
    assert lost_event(row, LOST_LIMIT - 1).retry_in is None, "the last loss ends the job: no next attempt"
