"""Which attempts the fold says ended, for the store's outcome counters: each attempt
once, and whether it ended its job, without a database."""

from __future__ import annotations

from contracts.enums import ErrorKind, Status
from store.lifecycle import AttemptState, Outcome, plan
from tests.unit.test_store_lifecycle import event


def test_an_attempt_a_redelivery_follows_ends_without_ending_its_job() -> None:
    events = [
        event(Status.STARTED),
        event(Status.ERROR, kind=ErrorKind.LOST, retry_in=0.0),
        event(Status.STARTED, attempt=2),
        event(Status.PROCESSED, attempt=2),
    ]
    assert plan({}, events).outcomes == [
        Outcome("acme", Status.ERROR, ErrorKind.LOST, job_ended=False),
        Outcome("acme", Status.PROCESSED, None, job_ended=True),
    ]


def test_an_attempt_a_later_one_overtook_ends_lost() -> None:
    current = {"j1": AttemptState(attempt=1, status=Status.STARTED)}
    assert plan(current, [event(Status.ACKNOWLEDGED, attempt=2)]).outcomes == [
        Outcome("acme", Status.ERROR, ErrorKind.LOST, job_ended=False)
    ]


def test_an_outcome_delivered_again_is_not_counted_again() -> None:
    current = {"j1": AttemptState(attempt=1, status=Status.ERROR, kind=ErrorKind.EXIT)}
    late = [event(Status.ERROR, kind=ErrorKind.EXIT, retry_in=1.0), event(Status.STARTED)]
    assert plan(current, late).outcomes == []
