"""Preparing a job's command: what a job without secrets gets is what it asked for."""

from __future__ import annotations

from typing import Any

from contracts.messages import JobMessage
from executor.secrets import Prepared, Refused, SecretSource
from tests.unit.jobs import message as job_message


def message(**fields: Any) -> JobMessage:
    return job_message(**({"argv": ["echo", "{{ secret.PW }}", "$X"]} | fields))


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
