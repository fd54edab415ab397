"""The store's event fold: fencing by attempt and forward-only moves, without a database."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.enums import ErrorKind, Status
from contracts.messages import JobEvent
from contracts.states import TRANSITIONS
from store.lifecycle import AttemptState, apply, guard_pairs, plan, reachable

AT = datetime(2026, 1, 1, tzinfo=UTC)


def event(status: Status, attempt: int = 1, job: str = "j1", **fields: object) -> JobEvent:
    return JobEvent.model_validate(
        {"job_id": job, "company": "acme", "attempt": attempt, "status": status, "at": AT, **fields}
    )


def test_first_event_creates_the_attempt() -> None:
    step = apply(None, event(Status.STARTED, runner="r1", pid=42))
    assert step.changed and not step.stale
    assert step.state == AttemptState(attempt=1, status=Status.STARTED, runner="r1", pid=42)


def test_forward_move_keeps_what_the_event_leaves_out() -> None:
    started = AttemptState(attempt=1, status=Status.STARTED, runner="r1", pid=42)
    step = apply(started, event(Status.PROCESSED, exit_code=0, stdout="hi"))
    assert step.changed
    assert step.state.runner == "r1" and step.state.pid == 42
    assert step.state.exit_code == 0 and step.state.stdout == "hi"
    assert step.state.final, "a processed attempt is final"


def test_backward_or_repeated_status_changes_nothing() -> None:
    done = AttemptState(attempt=1, status=Status.PROCESSED, final=True, exit_code=0)
    for status in (Status.ACKNOWLEDGED, Status.STARTED, Status.PROCESSED, Status.ERROR):
        step = apply(done, event(status, exit_code=9))
        assert not step.changed and not step.stale
        assert step.state is done


def test_a_late_early_event_fills_in_where_the_attempt_ran() -> None:
    done = AttemptState(attempt=1, status=Status.PROCESSED, final=True, exit_code=0, runner="r1")
    started = apply(done, event(Status.STARTED, runner="r2", pid=42, begin=AT))
    assert started.changed and not started.stale
    assert started.state == AttemptState(
        attempt=1, status=Status.PROCESSED, final=True, exit_code=0, runner="r1", pid=42, begin=AT
    ), "only what was missing is filled in; the status and outcome stay"
    failed = apply(done, event(Status.ERROR, kind=ErrorKind.EXIT, exit_code=3, pid=7))
    assert not failed.changed and failed.state is done, "a late outcome fills in nothing"


def test_events_in_any_order_leave_the_same_job() -> None:
    lifecycle = [
        event(Status.ACKNOWLEDGED, runner="r1"),
        event(Status.STARTED, runner="r1", pid=42, begin=AT),
        event(Status.PROCESSED, runner="r1", exit_code=0, end=AT, final=True),
    ]
    in_order = plan({}, lifecycle).jobs["j1"]
    for order in ([2, 0, 1], [2, 1, 0], [1, 2, 0], [0, 2, 1]):
        assert plan({}, [lifecycle[i] for i in order]).jobs["j1"] == in_order


def test_lower_attempt_is_stale() -> None:
    current = AttemptState(attempt=2, status=Status.STARTED)
    step = apply(current, event(Status.PROCESSED, attempt=1))
    assert step.stale and not step.changed and step.state is current


def test_higher_attempt_supersedes_an_unfinished_one() -> None:
    current = AttemptState(attempt=1, status=Status.STARTED, runner="r1")
    step = apply(current, event(Status.ACKNOWLEDGED, attempt=2, runner="r2"))
    assert step.changed and step.state.attempt == 2 and step.state.runner == "r2"
    assert step.superseded is not None
    assert step.superseded.attempt == 1 and step.superseded.status is Status.ERROR
    assert step.superseded.kind is ErrorKind.LOST
    assert step.superseded.reason == "superseded by attempt 2"


def test_higher_attempt_after_a_finished_one_supersedes_nothing() -> None:
    failed = AttemptState(attempt=1, status=Status.ERROR, kind=ErrorKind.EXIT, exit_code=1)
    step = apply(failed, event(Status.STARTED, attempt=2))
    assert step.changed and step.superseded is None


def test_error_final_flag_is_copied() -> None:
    started = AttemptState(attempt=1, status=Status.STARTED)
    retrying = apply(started, event(Status.ERROR, kind=ErrorKind.EXIT, final=False, retry_in=5.0))
    assert retrying.state.kind is ErrorKind.EXIT and not retrying.state.final
    given_up = apply(started, event(Status.ERROR, kind=ErrorKind.TIMEOUT, final=True))
    assert given_up.state.final


def test_plan_folds_a_batch_in_stream_order() -> None:
    events = [
        event(Status.ACKNOWLEDGED),
        event(Status.STARTED),
        event(Status.STARTED, attempt=2, job="j2"),
        event(Status.PROCESSED, exit_code=0),
        event(Status.ACKNOWLEDGED),
        event(Status.PROCESSED, attempt=1, job="j2"),
    ]
    current = {"j2": AttemptState(attempt=1, status=Status.ACKNOWLEDGED)}
    out = plan(current, events)
    assert out.stale == [False, False, False, False, False, True]
    assert out.jobs["j1"][1].status is Status.PROCESSED
    assert out.jobs["j2"] == ("acme", AttemptState(attempt=2, status=Status.STARTED))
    assert out.attempts["j2", 1].kind is ErrorKind.LOST
    assert set(out.attempts) == {("j1", 1), ("j2", 1), ("j2", 2)}


def test_an_older_attempt_s_late_error_goes_to_its_attempt_and_moves_no_job() -> None:
    current = {"j1": AttemptState(attempt=2, status=Status.STARTED)}
    late = event(Status.ERROR, kind=ErrorKind.EXIT, exit_code=3, retry_in=1.0)
    out = plan(current, [late, event(Status.STARTED, attempt=1)])
    assert out.stale == [True, True]
    assert out.jobs == {} and out.outcomes == [] and out.attempts == {}
    assert set(out.late) == {("j1", 1)}, "a late early event is not taken"
    assert (out.late["j1", 1].kind, out.late["j1", 1].exit_code) == (ErrorKind.EXIT, 3)


def test_plan_leaves_unchanged_jobs_out() -> None:
    current = {"j1": AttemptState(attempt=1, status=Status.PROCESSED, final=True)}
    out = plan(current, [event(Status.STARTED)])
    assert out.jobs == {} and out.attempts == {} and out.stale == [False]


def test_guards_allow_every_forward_move_and_no_backward_one() -> None:
    pairs = reachable()
    for source, targets in TRANSITIONS.items():
        assert {(source, t) for t in targets} <= pairs
    assert (Status.WAITING_FOR_PREREQUISITES, Status.PROCESSED) in pairs
    assert (Status.PROCESSED, Status.STARTED) not in pairs
    assert (Status.STARTED, Status.STARTED) not in pairs
    assert all(b not in {Status.WAITING_FOR_PREREQUISITES} for _, b in pairs)
    assert "dispatched>processed" in guard_pairs()
    assert "processed>processed" in guard_pairs(), "a fill-in keeps the status"
    assert "processed>started" not in guard_pairs()
