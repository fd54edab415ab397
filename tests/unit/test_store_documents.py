"""The projection's JSON documents: instants to the microsecond in any zone, and
each changed attempt marked with its job when it is the job's current one."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from contracts.enums import ErrorKind, Status
from contracts.messages import JobEvent
from store import documents
from store.lifecycle import AttemptState, plan

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
AT = datetime(2026, 1, 1, tzinfo=UTC)


def event(status: Status, attempt: int = 1, **fields: object) -> JobEvent:
    values = {"job_id": "j1", "company": "acme", "attempt": attempt, "status": status, "at": AT, **fields}
    return JobEvent.model_validate(values)


@pytest.mark.parametrize(
    "at",
    [
        datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 30, 0, 500000, tzinfo=timezone(timedelta(hours=5, minutes=45))),
        datetime(2026, 3, 29, 2, 30, tzinfo=ZoneInfo("Europe/Prague")),
        datetime(2026, 10, 25, 2, 30, tzinfo=ZoneInfo("Europe/Prague"), fold=1),
        event(Status.STARTED, at="2026-07-01T12:00:00.123456-03:30").at,
    ],
)
def test_an_instant_is_its_microseconds_since_the_epoch(at: datetime) -> None:
    assert documents.micros(at) == (at - EPOCH) // timedelta(microseconds=1)
    assert documents.micros(at) == documents.micros(at.astimezone(UTC)), "the zone never matters"


def test_no_instant_stays_none() -> None:
    assert documents.micros(None) is None


def test_only_the_jobs_current_attempt_moves_the_job() -> None:
    current = {"j1": AttemptState(attempt=1, status=Status.STARTED, runner="r1")}
    changes = plan(current, [event(Status.PROCESSED, attempt=2, exit_code=0, results={"k": "v"})])
    rows = json.loads(documents.states(changes))
    superseded, moved = rows
    assert superseded[:3] == ["j1", 1, "error"] and superseded[3] == ErrorKind.LOST.value
    assert superseded[12:] == [{}, None, False], "no results, and it moves no job"
    assert moved[:3] == ["j1", 2, "processed"]
    assert moved[12:] == [{"k": "v"}, "acme", True]


def test_events_say_which_ones_end_a_flow_nodes_job() -> None:
    recorded = [
        event(Status.STARTED),
        event(Status.ERROR, final=False),
        event(Status.ERROR, final=True),
        event(Status.PROCESSED),
    ]
    rows = json.loads(documents.events(recorded, [False, True, False, False]))
    assert [row[4:] for row in rows] == [[False, False], [True, False], [False, True], [False, True]]
    assert rows[0][:4] == ["j1", 1, "started", documents.micros(AT)]


def test_payloads_are_one_json_array() -> None:
    assert json.loads(documents.payloads(['{"a":1}', "[2]"])) == [{"a": 1}, [2]]
    assert documents.payloads([]) == "[]"
