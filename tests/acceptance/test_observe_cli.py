"""`jetjobs job logs -f`, `jetjobs events` and `jetjobs status` as a user runs them."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

import pytest

from tests.acceptance.cli import clean_env, jetjobs, started
from tests.stack import Stack, eventually, running_stack


@pytest.fixture
async def stack(nats_url: str, database_url: str):  # type: ignore[no-untyped-def]
    async with running_stack(nats_url, database_url, scheduler=False) as running:
        yield running


async def _gated_job(stack: Stack, gate: Path, *, new_company: bool = True) -> str:
    """A job that prints a line, waits until `gate` exists, then prints another."""
    script = (
        "echo first line; echo to stderr >&2; "
        f"for i in $(seq 300); do [ -e {gate} ] && break; sleep 0.1; done; echo second line"
    )
    if new_company:
        await stack.company("acme")
    app = await stack.app(f"-c '{script}'")
    template = await stack.template(name="gated", app=app.app.uuid, company="acme")
    return (await stack.run(template.id)).job_id


async def _read_line(stream: asyncio.StreamReader, timeout: float = 20.0) -> str:
    return (await asyncio.wait_for(stream.readline(), timeout)).decode()


async def test_job_logs_follow_shows_lines_while_the_job_runs(stack: Stack, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    job_id = await _gated_job(stack, gate)
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    follower = await started("job", "logs", job_id, "-f", env=env)
    try:
        assert follower.stdout is not None and follower.stderr is not None
        assert await _read_line(follower.stdout) == "first line\n"
        assert await _read_line(follower.stderr) == "to stderr\n"
        running = await stack.job(job_id)
        assert not running.final and running.status.value == "started"
        gate.touch()
        assert await _read_line(follower.stdout) == "second line\n"
        assert await asyncio.wait_for(follower.wait(), 20) == 0
        assert (await stack.job(job_id)).final
    finally:
        if follower.returncode is None:
            follower.kill()
            await follower.wait()

    history = await jetjobs("job", "logs", job_id, env=env)
    assert history.code == 0, history
    assert history.out == "first line\nsecond line\n"
    chunks = [
        json.loads(line)
        for line in (await jetjobs("--json", "job", "logs", job_id, env=env)).out.splitlines()
    ]
    assert {c["stream"] for c in chunks} == {"stdout", "stderr"}
    assert all(c["job_id"] == job_id and c["attempt"] == 1 for c in chunks)


async def test_job_logs_of_an_unknown_job_is_one_clear_line(stack: Stack) -> None:
    result = await jetjobs("job", "logs", "nope", env=clean_env(JETJOBS_NATS_URL=stack.nats_url))
    assert result.code == 1
    assert result.err.strip() == "jetjobs: error: no job nope: check the id with `jetjobs job list`"


async def test_events_tails_lifecycle_events(stack: Stack, tmp_path: Path) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    await stack.company("acme")  # `events` refuses a company the store does not know
    tail = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jetjobs", "events", "--company", "acme",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert tail.stderr is not None and tail.stdout is not None
        assert "following jetjobs.events.acme.*" in await _read_line(tail.stderr)
        gate = tmp_path / "gate"
        gate.touch()
        job_id = await _gated_job(stack, gate, new_company=False)
        statuses = [(await _read_line(tail.stdout)).split() for _ in range(3)]
        assert [line[2] for line in statuses] == [job_id] * 3
        assert [line[4] for line in statuses] == ["acknowledged", "started", "processed"]
    finally:
        tail.kill()
        await tail.wait()


async def test_status_shows_queues_runners_lag_and_failures(stack: Stack) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    await stack.company("acme")
    app = await stack.app("-c 'exit 2'")
    template = await stack.template(name="bad", app=app.app.uuid, company="acme")
    failed = await stack.final_job((await stack.run(template.id)).job_id)

    async def lag_gone() -> dict[str, object] | None:
        result = await jetjobs("--json", "status", env=env)
        assert result.code == 0, result
        report = json.loads(result.out)
        return report if report["failures"] and not any(report["store_lag"].values()) else None

    report = await eventually(lag_gone, what="status to show the failure with no store lag")
    assert report["store"] == "answering"
    assert re.search(r"reachable \(nats-server \d+\.\d+\.\d+\)$", report["nats"]), report["nats"]
    assert report["failures"][0]["job"] == failed.id
    assert [p["pool"] for p in report["pools"]] == ["default"]
    human = await jetjobs("status", env=env)
    assert human.code == 0
    for heading in ("NATS", "store", "scheduler", "runners", "queues", "last failures"):
        assert heading in human.out
