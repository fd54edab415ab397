"""One `jetjobs up` per home: a second one started at the same moment is refused
before it starts a server, and an `endpoints.json` left by a killed one, naming any
live pid, never keeps the next one from starting."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import sys
from pathlib import Path

import pytest

from tests.acceptance.cli import clean_env, jetjobs
from tests.acceptance.test_up import gone, interrupt, read_until, start_up

pytestmark = pytest.mark.timeout(180)


async def _stop(*processes: asyncio.subprocess.Process) -> None:
    for process in processes:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


async def _works(home: Path) -> None:
    """A client command beside the `up` in `home` finds it and is answered."""
    listed = await jetjobs("--home", str(home), "--json", "company", "list", env=clean_env())
    assert listed.code == 0, listed


async def test_two_ups_at_once_on_one_home_one_runs_the_other_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first, second = await asyncio.gather(start_up(home), start_up(home))
    try:
        waits = {asyncio.ensure_future(p.wait()): p for p in (first, second)}
        done, _ = await asyncio.wait(waits, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        assert done, "neither jetjobs up exited: both run on the same home"
        loser = waits[done.pop()]
        winner = second if loser is first else first
        for waiting in waits:
            waiting.cancel()
        assert loser.stdout is not None and winner.stdout is not None
        said = (await loser.stdout.read()).decode()
        assert loser.returncode == 1, said
        assert said == (
            f"jetjobs: error: jetjobs up is already running for {home.resolve()} (pid {winner.pid}); "
            "stop it or use another --home\n"
        )
        await read_until(winner.stdout, "jetjobs is up", timeout=60)
        await _works(home)
        assert await interrupt(winner) == 0
    finally:
        await _stop(first, second)
    await gone(home, timeout=20)


async def _up_after(home: Path, stale_pid: str) -> asyncio.subprocess.Process:
    """`jetjobs up` started over an `endpoints.json` that names `stale_pid`, as one
    left by an `up` killed outright; `$$` is the pid `up` itself then runs as (`exec`),
    as in a container where `up` is pid 1 every time."""
    endpoints = home / "endpoints.json"
    left = '{"nats_url": "nats://127.0.0.1:1", "database_url": "postgresql://x@127.0.0.1:1/x", "pid": %s}'
    up = shlex.join([sys.executable, "-m", "jetjobs", "--home", str(home), "up"])
    script = f"printf {shlex.quote(left)} {stale_pid} > {shlex.quote(str(endpoints))} && exec {up}"
    return await asyncio.create_subprocess_exec(
        "sh",
        "-c",
        script,
        env=clean_env(JETJOBS_LOG_LEVEL="warning"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.mark.parametrize("stale_pid", ["$$", str(os.getpid())], ids=["its-own-pid", "another-live-pid"])
async def test_a_stale_endpoints_file_naming_a_live_pid_does_not_stop_up(
    tmp_path: Path, stale_pid: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    process = await _up_after(home, stale_pid)
    try:
        assert process.stdout is not None
        await read_until(process.stdout, "jetjobs is up", timeout=60)
        announced = json.loads((home / "endpoints.json").read_text())
        assert announced["pid"] == process.pid and announced["nats_url"] != "nats://127.0.0.1:1"
        await _works(home)
        assert await interrupt(process) == 0
    finally:
        await _stop(process)
    await gone(home, timeout=20)
