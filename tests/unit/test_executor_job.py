"""Pure parts of running a job: attempts, deadlines, environment, dead letters, results."""

from __future__ import annotations

import asyncio
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bus import Delivery, Invalid, Nak
from bus.infra import MAX_MESSAGE_BYTES
from bus.letters import company_of, dead_letter, job_id_of
from bus.publish import encode
from contracts.base import RESERVED_ENV
from contracts.enums import ErrorKind, Status
from contracts.messages import JobMessage
from executor import ExecutorConfig, ExecutorConfigError
from executor.control import Control
from executor.environment import job_env
from executor.events import Attempt, Result
from executor.gate import RELEASE_DELAY, Gate, Refuse, Release, check
from executor.job import admitted, attempt_number, conclude, expired
from executor.outcome import Failed, HandedBack, Retry, Succeeded, action_for
from executor.output import Capture
from executor.process import Aborted, Exited, TimedOut
from executor.results import with_result_file
from tests.unit.jobs import NOW, message


def result(stdout: bytes = b"", limit: int = 1000, exit_code: int | None = None) -> Result:
    out, err = Capture(limit), Capture(limit)
    out.feed(stdout)
    return Result(NOW, NOW + timedelta(seconds=1), out, err, exit_code)


def test_attempt_number_follows_deliveries() -> None:
    assert attempt_number(message(), 1) == 1
    assert attempt_number(message(), 3) == 3
    assert attempt_number(message(attempt=4), 2) == 5


def test_first_delivery_after_the_deadline_is_expired() -> None:
    late = NOW + timedelta(seconds=61)
    reason = expired(message(), 1, late)
    assert reason is not None and reason.startswith("not taken within 60 s of dispatch")
    assert expired(message(), 1, NOW + timedelta(seconds=60)) is None


def test_redelivery_is_never_expired() -> None:
    assert expired(message(), 2, NOW + timedelta(days=1)) is None


def test_job_env_layers_and_identity() -> None:
    own = {"PATH": "/bin", "HOME": "/home/x", "SECRET": "s", "LANG": "C.UTF-8"}
    env = job_env(own, message(env={"A": "1", "HOME": "/job", "JETJOBS_JOB_ID": "fake"}), 2)
    assert env == {
        "PATH": "/bin",
        "HOME": "/job",
        "LANG": "C.UTF-8",
        "A": "1",
        "JETJOBS_JOB_ID": "j1",
        "JETJOBS_ATTEMPT": "2",
        "JETJOBS_COMPANY": "acme",
    }


def test_job_env_has_a_path_even_without_one() -> None:
    assert job_env({}, message(), 1)["PATH"]


def test_every_variable_the_executor_sets_is_one_no_env_may_give(tmp_path: Path) -> None:
    """The names refused where env enters are exactly those a job is given over them."""
    given = with_result_file(job_env({"PATH": "/bin"}, message(), 1), str(tmp_path))
    assert {name for name in given if name.startswith("JETJOBS_")} == RESERVED_ENV


@pytest.mark.parametrize(
    ("subject", "company"),
    [
        ("jetjobs.dispatch.acme.default", "acme"),
        ("jetjobs.dispatch.ACME.default", "unknown"),
        ("jetjobs.dispatch", "unknown"),
        ("jetjobs.dispatch.a*b.default", "unknown"),
    ],
)
def test_company_of_subject(subject: str, company: str) -> None:
    assert company_of(subject) == company


@pytest.mark.parametrize(
    ("payload", "job_id"),
    [
        (b'{"job_id": "abc-1"}', "abc-1"),
        (b'{"job_id": "bad id"}', None),
        (b'{"job_id": 5}', None),
        (b"[1, 2]", None),
        (b"\xff\xfe", None),
        (b"[" * 100_000, None),
    ],
)
def test_job_id_of_payload(payload: bytes, job_id: str | None) -> None:
    assert job_id_of(payload) == job_id


@dataclass
class FakeMsg:
    subject: str
    data: bytes
    headers: dict[str, str] | None = field(default=None)


def test_dead_letter_keeps_the_original() -> None:
    msg = FakeMsg("jetjobs.dispatch.acme.default", b'{"job_id": "j9", "x": "\xff"}', {"Nats-Msg-Id": "j9"})
    letter = dead_letter(Invalid(msg, "not valid JSON"), NOW)  # type: ignore[arg-type]
    assert letter.company == "acme"
    assert letter.job_id is None
    assert letter.reason == "not valid JSON"
    assert letter.payload == '{"job_id": "j9", "x": "\ufffd"}'
    assert letter.headers == {"Nats-Msg-Id": "j9"}


def test_job_on_its_own_subject_is_admitted() -> None:
    delivery = Delivery(message(), FakeMsg("jetjobs.dispatch.acme.default", b""))  # type: ignore[arg-type]
    assert admitted(delivery) is delivery


def test_job_on_another_companys_subject_is_refused() -> None:
    delivery = Delivery(message(company="other"), FakeMsg("jetjobs.dispatch.acme.default", b""))  # type: ignore[arg-type]
    refused = admitted(delivery)
    assert isinstance(refused, Invalid)
    assert refused.reason == (
        "came on jetjobs.dispatch.acme.default: "
        "publish it to jetjobs.dispatch.other.default, the subject its payload names"
    )


def test_conclude_success() -> None:
    event, outcome = conclude(Attempt(message(), 1, "r"), Exited(0), result(b"hi\n", exit_code=0))
    assert outcome == Succeeded()
    assert (event.status, event.exit_code, event.stdout, event.final) == (Status.PROCESSED, 0, "hi\n", True)


def test_conclude_exit_with_retries_left() -> None:
    event, outcome = conclude(Attempt(message(retries=1), 1, "r"), Exited(3), result(exit_code=3))
    assert isinstance(outcome, Retry)
    assert (event.kind, event.exit_code, event.final, event.retry_in) == (
        ErrorKind.EXIT,
        3,
        False,
        outcome.delay,
    )


def test_conclude_exit_without_retries() -> None:
    event, outcome = conclude(Attempt(message(retries=1), 2, "r"), Exited(3), result(exit_code=3))
    assert outcome == Failed()
    assert (event.final, event.retry_in, event.reason) == (True, None, "exited with code 3")


def test_conclude_killed_by_signal() -> None:
    event, _ = conclude(Attempt(message(), 1, "r"), Exited(137, 9), result(exit_code=137))
    assert event.reason == "killed by SIGKILL (exit status 137)"


def test_conclude_timeout() -> None:
    event, outcome = conclude(Attempt(message(), 1, "r"), TimedOut(), result())
    assert outcome == Failed()
    assert event.kind is ErrorKind.TIMEOUT and event.reason is not None and "10 s" in event.reason


def test_conclude_aborted_hands_back() -> None:
    event, outcome = conclude(Attempt(message(), 1, "runner-7"), Aborted(), result())
    assert outcome == HandedBack()
    assert (event.kind, event.final, event.retry_in) == (ErrorKind.LOST, False, 0.0)
    assert event.reason is not None and "runner-7" in event.reason


def test_huge_escaped_output_still_fits_one_message() -> None:
    limit = 256 * 1024
    event, _ = conclude(Attempt(message(), 1, "r"), Exited(0), result(b"\x01" * limit, limit=limit))
    assert len(encode(event)) < MAX_MESSAGE_BYTES
    assert event.stdout is not None and "output truncated" in event.stdout


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"slots": 0}, "slots must be at least 1"),
        ({"pool": "Bad Pool"}, "not a valid pool name"),
        ({"grace": -1}, "cannot be negative"),
        ({"output_limit": 0}, "output_limit"),
        ({"live_output_limit": 0}, "live_output_limit must be at least 1 byte"),
        ({"company": "Acme Inc"}, "not a valid company code"),
        ({"runner_id": ""}, "runner_id"),
    ],
)
def test_config_rejects_bad_values(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ExecutorConfigError, match=problem):
        ExecutorConfig(nats_url="nats://x", **fields)


def test_config_default_runner_is_host_and_pid() -> None:
    assert ExecutorConfig(nats_url="nats://x").runner_id.endswith(f"-{os.getpid()}")


def gate_of(job: JobMessage, delivered: int = 1, waited: float = 0.0) -> Gate:
    async def check_now() -> Gate:
        received = asyncio.get_running_loop().time() - waited
        return check(job, delivered, Control(received=received), {}, NOW)

    return asyncio.run(check_now())


@pytest.mark.parametrize(
    "fields",
    [
        {"timeout": 1e14},
        {"timeout": math.inf},
        {"dispatched_at": datetime(9999, 12, 31, 23, tzinfo=UTC), "timeout": 3600},
    ],
)
def test_a_take_by_time_past_any_date_refuses_the_job_as_invalid(fields: dict[str, Any]) -> None:
    # Unvalidated, as a message from a publisher with older contracts would be.
    job = message().model_copy(update=fields)
    refused = gate_of(job)
    assert isinstance(refused, Refuse) and refused.kind is ErrorKind.INVALID
    assert "is past any date" in refused.reason and "shorter timeout" in refused.reason
    assert gate_of(job, delivered=2) is None, "a redelivery was taken in time before"


def test_a_released_job_is_handed_back_after_a_pause() -> None:
    released = gate_of(message(timeout_ack=1), waited=2)
    assert isinstance(released, Release) and released.delay == RELEASE_DELAY >= 1
    assert action_for(HandedBack(released.delay)) == Nak(RELEASE_DELAY)
