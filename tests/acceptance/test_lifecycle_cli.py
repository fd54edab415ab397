"""`jetjobs dlq list|replay`, `jetjobs job cancel` and `jetjobs runners` as a user runs them."""

from __future__ import annotations

import json

import pytest

from contracts import subjects as s
from tests.acceptance.cli import Result, clean_env, jetjobs
from tests.acceptance.test_cli import one_line_error
from tests.stack import Stack, eventually, running_stack


@pytest.fixture
async def stack(nats_url: str, database_url: str):  # type: ignore[no-untyped-def]
    async with running_stack(nats_url, database_url, scheduler=False) as running:
        yield running


async def _letters(env: dict[str, str], count: int) -> list[dict[str, object]]:
    async def listed() -> list[dict[str, object]] | None:
        result = await jetjobs("--json", "dlq", "list", "--company", "acme", env=env)
        assert result.code == 0, result
        letters: list[dict[str, object]] = json.loads(result.out)
        return letters if len(letters) >= count else None

    return await eventually(listed, 30, f"{count} dead letters")


async def test_dead_letters_are_listed_and_replayed(stack: Stack) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    await stack.company("acme")
    app = await stack.app("-c 'exit 5'")
    template = await stack.template(name="failing", app=app.app.uuid, company="acme")
    job_id = (await stack.run(template.id)).job_id
    [letter] = await _letters(env, 1)
    assert letter["job_id"] == job_id and "no retry is left" in str(letter["reason"])

    human = await jetjobs("dlq", "list", "--company", "acme", env=env)
    assert job_id in human.out and "exit" in human.out

    replayed = await jetjobs("dlq", "replay", str(letter["id"]), env=env)
    assert replayed.code == 0, replayed
    assert replayed.out.strip() == f"replayed dead letter {letter['id']} as job {job_id} attempt 2"
    letters = await _letters(env, 2)
    assert {d["job_id"] for d in letters} == {job_id}, "the replay failed again and was buried again"
    assert any(d["replayed_as"] == 2 for d in letters)

    one_line_error(await jetjobs("dlq", "replay", "999999", env=env), "unknown dead letter 999999")


async def test_a_malformed_message_is_buried_and_cannot_be_replayed(stack: Stack) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    await stack.company("acme")  # to list its dead letters
    await stack.bus.js.publish(s.dispatch_subject("acme", "default"), b"{not json")
    [letter] = await _letters(env, 1)
    assert letter["job_id"] is None
    refused: Result = await jetjobs("dlq", "replay", str(letter["id"]), env=env)
    one_line_error(refused, "is not a valid job")


async def test_cancel_kills_a_running_job_and_runners_lists_the_executor(stack: Stack) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    await stack.company("acme")
    app = await stack.app("-c 'sleep 60'")
    template = await stack.template(name="slow", app=app.app.uuid, company="acme")
    job_id = (await stack.run(template.id)).job_id

    async def started() -> bool:
        return (await stack.job(job_id)).status.value == "started"

    await eventually(started, 30, "the job to start")

    async def runner_holds_the_job() -> list[dict[str, object]] | None:
        listed: list[dict[str, object]] = json.loads((await jetjobs("--json", "runners", env=env)).out)
        return listed if [r["running"] for r in listed] == [[job_id]] else None

    runners = await eventually(runner_holds_the_job, 30, "the runner's heartbeat to list the job")
    assert runners[0]["pool"] == "default"
    human = await jetjobs("runners", "--pool", "default", env=env)
    assert runners[0]["id"] in human.out
    assert json.loads((await jetjobs("--json", "runners", "--pool", "other", env=env)).out) == []

    cancelled = await jetjobs("job", "cancel", job_id, env=env)
    assert cancelled.code == 0, cancelled
    assert cancelled.out.strip() == f"cancelled job {job_id} (running): its process is being killed"

    async def ended() -> bool:
        job = await stack.job(job_id)
        return (
            job.final
            and job.status.value == "error"
            and job.kind is not None
            and job.kind.value == "cancelled"
        )

    await eventually(ended, 30, "the cancelled job to end")
    one_line_error(await jetjobs("job", "cancel", "no-such-job", env=env), "no-such-job")
