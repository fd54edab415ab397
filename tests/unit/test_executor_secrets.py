"""Preparing a job's command: what a job without secrets gets is what it asked for."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from contracts.messages import JobMessage
from executor.secrets import Prepared, Refused, SecretSource

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def message(**fields: Any) -> JobMessage:
    values: dict[str, Any] = {
        "job_id": "j1",
        "company": "acme",
        "argv": ["echo", "{{ secret.PW }}", "$X"],
        "scheduled_at": NOW,
        "dispatched_at": NOW,
        "timeout": 60,
        "timeout_ack": 30,
        "timeout_result": 10,
    }
    return JobMessage(**(values | fields))


async def test_a_job_without_secrets_runs_its_argv_and_env_unmasked() -> None:
    env = {"X": "1"}
    prepared = await SecretSource(None).prepare(message(), env)
    assert isinstance(prepared, Prepared)
    assert prepared.argv == ["echo", "{{ secret.PW }}", "$X"] and prepared.env == env
    assert prepared.env is not env and not prepared.masker
    assert prepared.masker.mask(b"anything") == b"anything"


async def test_required_variables_are_checked_without_secrets_too() -> None:
    prepared = await SecretSource(None).prepare(message(required=["MODE"]), {"MODE": ""})
    assert isinstance(prepared, Refused) and "MODE" in prepared.reason
    assert isinstance(await SecretSource(None).prepare(message(required=["MODE"]), {"MODE": "x"}), Prepared)
