"""What `job logs -f`, `job run` and `job list` tell a user about jobs that did not
succeed, waits asked for, and filters that name nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.acceptance.cli import clean_env, jetjobs, started
from tests.stack import Stack, running_stack


@pytest.fixture
async def stack(nats_url: str, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(nats_url, database_url, scheduler=False) as running:
        await running.company("acme")
        yield running


async def _template(stack: Stack, script: str, name: str) -> int:
    app = await stack.app(f"-c '{script}'")
    return (await stack.template(name=name, app=app.app.uuid, company="acme")).id


async def test_job_logs_follow_says_how_a_cancelled_job_ended_and_exits_1(
    stack: Stack, tmp_path: Path
) -> None:
    gate = tmp_path / "never"
    template_id = await _template(stack, f"echo working; while [ ! -e {gate} ]; do sleep 0.1; done", "slow")
    job_id = (await stack.run(template_id)).job_id
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    follower = await started("job", "logs", job_id, "-f", env=env)
    try:
        assert follower.stdout is not None
        assert await asyncio.wait_for(follower.stdout.readline(), 20) == b"working\n"
        cancelled = await jetjobs("job", "cancel", job_id, env=env)
        assert cancelled.code == 0, cancelled
        out, err = await asyncio.wait_for(follower.communicate(), 20)
    finally:
        if follower.returncode is None:
            follower.kill()
            await follower.wait()
    assert follower.returncode == 1, err
    assert out == b""
    assert err.decode().splitlines()[-1] == (
        f"job {job_id} ended: error (cancelled): cancelled while running: cancelled by request"
    )


async def test_job_logs_follow_of_an_ended_job_says_how_and_exits_by_it(stack: Stack) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    failed = (await stack.run(await _template(stack, "echo trying; exit 3", "fails"))).job_id
    worked = (await stack.run(await _template(stack, "echo done", "works"))).job_id
    await stack.final_job(failed)
    await stack.final_job(worked)

    result = await jetjobs("job", "logs", failed, "-f", env=env)
    assert (result.code, result.out) == (1, "trying\n"), result
    assert result.err.splitlines()[-1].startswith(f"job {failed} ended: error (exit), exit code 3")
    result = await jetjobs("job", "logs", worked, "-f", env=env)
    assert (result.code, result.out) == (0, "done\n"), result
    assert result.err.splitlines()[-1] == f"job {worked} ended: processed, exit code 0"
    history = await jetjobs("job", "logs", failed, env=env)  # without -f: the output, as before
    assert (history.code, history.out, history.err) == (0, "trying\n", "")


async def test_job_run_wait_timeout_alone_waits(stack: Stack) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    result = await jetjobs(
        "job", "run", str(await _template(stack, "exit 3", "fails")), "--wait-timeout", "30", env=env
    )
    assert result.code == 1, result
    assert "status     error (exit, exit code 3)" in result.out

    slow = await _template(stack, "sleep 30", "slow")
    result = await jetjobs("job", "run", str(slow), "--wait-timeout", "1", env=env)
    assert result.code == 1
    assert "has no outcome after 1 s; follow it with `jetjobs job show" in result.err


async def test_job_list_of_an_unknown_template_is_an_error(stack: Stack) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    result = await jetjobs("job", "list", "--template", "999", env=env)
    assert result.code == 1
    assert result.err.strip() == "jetjobs: error: unknown template 999: see `jetjobs template list`"

    known = await _template(stack, "true", "known")
    await stack.final_job((await stack.run(known)).job_id)
    listed = await jetjobs("job", "list", "--template", str(known), env=env)
    assert listed.code == 0 and len(listed.out.splitlines()) == 2, listed
