"""`jetjobs job logs -f`, `events` and `job run --wait` while their nats-server is
killed: a restart is ridden out, a server that stays away ends each with one line."""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bus.watch import FOLLOW_PATIENCE
from jetjobs.embedded import NatsServer
from tests.acceptance.cli import clean_env
from tests.stack import Stack, eventually, running_stack

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
async def stack(embedded_nats: NatsServer, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(embedded_nats.url, database_url, scheduler=False) as running:
        yield running


@pytest.fixture
async def followers(stack: Stack) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """The `jetjobs` processes a test starts, killed at teardown if still running."""
    started: list[asyncio.subprocess.Process] = []
    yield started
    for process in started:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _follow(
    followers: list[asyncio.subprocess.Process], url: str, *args: str
) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jetjobs", *args,
        env=clean_env(JETJOBS_NATS_URL=url),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    followers.append(process)
    return process


async def _line(stream: asyncio.StreamReader | None, timeout: float = 20.0) -> str:
    assert stream is not None
    return (await asyncio.wait_for(stream.readline(), timeout)).decode()


async def _gated_template(stack: Stack, gate: Path) -> int:
    """A template whose jobs print a line, wait until `gate` exists, then print another."""
    script = (
        f"echo first line; for i in $(seq 600); do [ -e {gate} ] && break; sleep 0.1; done; echo second line"
    )
    await stack.company("acme")
    app = await stack.app(f"-c '{script}'")
    return (await stack.template(name="gated", app=app.app.uuid, company="acme")).id


def _connections(server: NatsServer) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{server.monitor_url}/connz?subs=1", timeout=5) as reply:
        found: list[dict[str, Any]] = json.load(reply).get("connections") or []
        return found


async def _connected(server: NatsServer, *, commands: int) -> None:
    """Until the executor and `commands` jetjobs commands are connected, one of them
    subscribed to acme's events (as the server sees them: after a restart, once the
    clients reconnected)."""

    async def probe() -> bool:
        connections = await asyncio.to_thread(_connections, server)
        names = [c.get("name") for c in connections]
        subjects = {subject for c in connections for subject in c.get("subscriptions_list") or []}
        return (
            "jetjobs-executor" in names
            and names.count("jetjobs-cli") == commands
            and "jetjobs.events.acme.*" in subjects
        )

    await eventually(probe, 20, f"the executor and {commands} commands to be connected")


async def test_followers_ride_out_a_nats_restart(
    stack: Stack, embedded_nats: NatsServer, followers: list[asyncio.subprocess.Process], tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    job_id = (await stack.run(await _gated_template(stack, gate))).job_id
    logs = await _follow(followers, stack.nats_url, "job", "logs", job_id, "-f")
    events = await _follow(followers, stack.nats_url, "events", "--company", "acme")
    assert await _line(logs.stdout) == "first line\n"
    assert "following jetjobs.events.acme.*" in await _line(events.stderr)

    await asyncio.to_thread(embedded_nats.kill)
    await asyncio.sleep(2.0)
    await asyncio.to_thread(embedded_nats.restart)
    await _connected(embedded_nats, commands=2)
    gate.touch()

    # the followers' consumers are back within seconds (nats-py alone: 10-20 s)
    assert await _line(logs.stdout, 10) == "second line\n"
    assert await asyncio.wait_for(logs.wait(), 10) == 0
    assert logs.stderr is not None
    said = (await logs.stderr.read()).decode()
    assert f"job {job_id} ended: processed, exit code 0\n" in said
    assert "Traceback" not in said
    processed = await _line(events.stdout, 30)
    assert processed.split()[2] == job_id and processed.split()[4] == "processed", processed
    assert events.returncode is None, "events kept following after NATS came back"


async def test_followers_end_with_one_line_when_nats_stays_away(
    stack: Stack, embedded_nats: NatsServer, followers: list[asyncio.subprocess.Process], tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    template_id = await _gated_template(stack, gate)
    job_id = (await stack.run(template_id)).job_id
    logs = await _follow(followers, stack.nats_url, "job", "logs", job_id, "-f")
    events = await _follow(followers, stack.nats_url, "events", "--company", "acme")
    assert await _line(logs.stdout) == "first line\n"
    await _connected(embedded_nats, commands=2)
    run = await _follow(followers, stack.nats_url, "job", "run", str(template_id), "--wait")
    for _ in range(2):  # the run's job acknowledged, then started
        await _line(events.stdout)
    await asyncio.sleep(1.0)  # the store answers `job run` after that, which then follows the job

    await asyncio.to_thread(embedded_nats.kill)
    try:
        patience = FOLLOW_PATIENCE + 20
        ended = await asyncio.wait_for(
            asyncio.gather(*(p.communicate() for p in (logs, events, run))), patience
        )
    finally:
        gate.touch()  # the services stop cleanly, at once: NATS back, no job left running
        await asyncio.to_thread(embedded_nats.restart)

    lost = (
        f"jetjobs: error: lost NATS at {embedded_nats.url}: it did not come back within "
        f"{FOLLOW_PATIENCE:g} s; run the command again once NATS is back"
    )
    for process, (_, err) in zip((logs, events, run), ended, strict=True):
        said = err.decode()
        assert process.returncode == 1, said
        assert "Traceback" not in said
        assert said.splitlines()[-1] == lost
