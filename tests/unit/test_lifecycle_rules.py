"""Pure lifecycle rules: exit-code classes, the pre-ack gate, dead letters of exhausted jobs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from contracts.enums import ErrorKind, Status
from contracts.lifecycle import ExitCodes
from contracts.messages import JobEvent, JobMessage
from executor.classify import ExitClass, classify
from executor.control import Control
from executor.dead import exhausted_letter
from executor.gate import Refuse, Release, check
from tests.unit.jobs import message as job_message

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def message(**fields: object) -> JobMessage:
    times = {"scheduled_at": NOW, "dispatched_at": NOW, "timeout_ack": 5.0, "timeout_result": 60.0}
    return job_message(**(times | fields))


@pytest.mark.parametrize(
    ("code", "codes", "expected"),
    [
        (0, None, ExitClass.SUCCESS),
        (1, None, ExitClass.RETRY),
        (3, ExitCodes(success=[0, 3]), ExitClass.SUCCESS),
        (2, ExitCodes(final=[2]), ExitClass.FINAL),
        (4, ExitCodes(retry=[75]), ExitClass.FINAL),
        (75, ExitCodes(retry=[75]), ExitClass.RETRY),
    ],
)
def test_exit_codes_are_classified_per_application(
    code: int, codes: ExitCodes | None, expected: ExitClass
) -> None:
    assert classify(code, codes) is expected


def test_an_exit_code_in_two_classes_is_refused() -> None:
    with pytest.raises(ValidationError, match="more than one class"):
        ExitCodes(success=[0], final=[0])


def test_gate_order_cancelled_then_late_then_slow() -> None:
    async def run() -> None:
        loop_now = asyncio.get_running_loop().time()
        fresh = Control(received=loop_now)
        assert check(message(), 1, fresh, {}, NOW) is None
        cancelled = check(message(), 1, fresh, {"j1": "by request"}, NOW + timedelta(hours=1))
        assert isinstance(cancelled, Refuse) and cancelled.kind is ErrorKind.CANCELLED
        late = check(message(), 1, fresh, {}, NOW + timedelta(seconds=61))
        assert isinstance(late, Refuse) and late.kind is ErrorKind.UNDELIVERED
        assert check(message(), 2, fresh, {}, NOW + timedelta(seconds=61)) is None, (
            "redeliveries are not late"
        )
        slow = check(message(), 1, Control(received=loop_now - 6), {}, NOW)
        assert isinstance(slow, Release)

    asyncio.run(run())


@dataclass
class FakeMsg:
    subject: str = "jetjobs.dispatch.acme.default"
    data: bytes = b'{"job_id": "j1"}'
    headers: dict[str, str] | None = None


def event(**fields: object) -> JobEvent:
    values: dict[str, object] = {
        "job_id": "j1",
        "company": "acme",
        "attempt": 2,
        "status": Status.ERROR,
        "at": NOW,
    }
    return JobEvent.model_validate({**values, **fields})


def test_only_final_failures_after_running_are_dead_lettered() -> None:
    letter = exhausted_letter(
        FakeMsg(headers={"Nats-Msg-Id": "j1"}), event(kind=ErrorKind.TIMEOUT, final=True)
    )
    assert (
        letter is not None
        and letter.payload == '{"job_id": "j1"}'
        and letter.headers == {"Nats-Msg-Id": "j1"}
    )
    assert exhausted_letter(FakeMsg(), event(kind=ErrorKind.EXIT, final=False)) is None
    assert exhausted_letter(FakeMsg(), event(kind=ErrorKind.CANCELLED, final=True)) is None
    assert exhausted_letter(FakeMsg(), event(status=Status.PROCESSED, final=True)) is None
