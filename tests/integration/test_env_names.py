"""A job whose env holds a name or value no process can be started with (a raw
publisher could send `"A=B"`, `""`, a NUL byte) ends `invalid` naming it. It ended with
posix_spawn's bare "illegal environment variable name", naming neither the variable
nor the rule; the dead letter now says both."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bus import Bus, Layout
from contracts import subjects as s
from contracts.base import NAME_RULE, env_refusal
from contracts.messages import DeadLetter, JobMessage
from executor import ExecutorConfig, ExecutorService

WAIT = 20.0


def _message(env: dict[str, str]) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "job_id": uuid.uuid4().hex,
        "company": "acme",
        "argv": ["true"],
        "env": env,
        "scheduled_at": now,
        "dispatched_at": now,
        "timeout": 60,
        "timeout_ack": 30,
        "timeout_result": 20,
    }


@pytest.mark.parametrize("name", ["", "A=B", "BAD VAR", "1ST", "NUL\x00NAME"])
def test_a_name_no_process_can_take_is_named(name: str) -> None:
    reason = env_refusal({"GOOD": "1", name: "1"})
    assert reason == f"env: {name!r} is not an environment variable name: {NAME_RULE}", reason


def test_a_value_with_a_nul_byte_is_named_by_its_variable() -> None:
    reason = env_refusal({"GOOD": "1", "API_TOKEN": "a\x00b"})
    assert reason is not None and reason.startswith("env: API_TOKEN holds a NUL byte"), reason


def test_usual_names_and_the_ones_jetjobs_sets_are_taken() -> None:
    env = {"API_TOKEN": "t", "_x1": "", "JETJOBS_JOB_ID": "set over by the executor"}
    assert env_refusal(env) is None
    assert JobMessage.model_validate_json(json.dumps(_message(env))).env == env


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    opened = await Bus.open(nats_url, "env-names-test", Layout())
    yield opened
    await opened.close()


@pytest.fixture
async def executor(nats_url: str, bus: Bus) -> AsyncIterator[ExecutorService]:
    service = ExecutorService(ExecutorConfig(nats_url=nats_url, runner_id="runner-1"), Layout())
    await service.start()
    yield service
    await service.stop()


async def _dead_letters(bus: Bus, count: int) -> list[DeadLetter]:
    async with asyncio.timeout(WAIT):
        while True:
            if (await bus.js.stream_info(s.DEAD_STREAM)).state.messages >= count:
                break
            await asyncio.sleep(0.05)
    return [
        DeadLetter.model_validate_json((await bus.js.get_msg(s.DEAD_STREAM, seq)).data or b"")
        for seq in range(1, count + 1)
    ]


async def test_the_dead_letter_names_the_bad_variable(bus: Bus, executor: ExecutorService) -> None:
    bad_name, bad_value = _message({"A=B": "1"}), _message({"API_TOKEN": "a\x00b"})
    for message in (bad_name, bad_value):
        await bus.js.publish("jetjobs.dispatch.acme.default", json.dumps(message).encode())
    letters = {letter.job_id: letter for letter in await _dead_letters(bus, 2)}
    named = letters[bad_name["job_id"]].reason
    assert f"env: 'A=B' is not an environment variable name: {NAME_RULE}" in named, named
    nul = letters[bad_value["job_id"]].reason
    assert "env: API_TOKEN holds a NUL byte" in nul, nul
