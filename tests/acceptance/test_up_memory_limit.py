"""`jetjobs up` with a memory limit: its executor, stopped at the limit, starts again and
demo jobs run on; a limit the process already fills is refused before anything runs.

The limit is reached by a leak the executor holds (`LEAK_HOOK`, set off by SIGUSR1):
real memory in the real process, gone with the executor that held it, as what an
executor builds up is gone when a fresh one replaces it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from datetime import datetime
from pathlib import Path

import pytest

from tests.acceptance.cli import clean_env, jetjobs
from tests.acceptance.test_up import _logged, gone, interrupt, read_until, start_up
from tests.stack import eventually

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]

LEAK_HOOK = """
import os
import signal
import weakref

from executor import lifeline

LEAK = 256 * 2**20
latest = []
kept = []
made = lifeline.Lifeline.__init__


def recording(self, *args, **kwargs):
    made(self, *args, **kwargs)
    latest[:] = [weakref.ref(self)]


def leak(signum, frame):
    holder = latest[0]() if latest else None
    if holder is not None:
        holder.leak = b"x" * LEAK
        if os.environ.get("LEAK_KEPT"):
            kept.append(holder.leak)


lifeline.Lifeline.__init__ = recording
signal.signal(signal.SIGUSR1, leak)
"""
"""A `sitecustomize` that makes SIGUSR1 leak LEAK bytes, held by the newest executor
(and by the process too, past any restart, when LEAK_KEPT is set)."""

LIMIT_MB = "192"
"""Above the size of `up` at start plus the headroom, far below it plus the leak."""


def leaking_pythonpath(folder: Path) -> str:
    """A PYTHONPATH whose processes leak on SIGUSR1 (see LEAK_HOOK)."""
    hook = folder / "leak-hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(LEAK_HOOK)
    return f"{hook}{os.pathsep}{ROOT}"


async def _ran_after(home: Path, moment: datetime) -> bool:
    listed = await jetjobs("--home", str(home), "--json", "job", "list", "--company", "demo", env=clean_env())
    assert listed.code == 0, listed
    return any(
        job["status"] == "processed" and job["begin"] and datetime.fromisoformat(job["begin"]) > moment
        for job in json.loads(listed.out)
    )


async def test_up_restarts_its_executor_at_its_memory_limit_and_runs_on(tmp_path: Path) -> None:
    home = tmp_path / "home"
    process = await start_up(
        home, "--demo", JETJOBS_MEMORY_LIMIT_MB=LIMIT_MB, PYTHONPATH=leaking_pythonpath(tmp_path)
    )
    assert process.stdout is not None
    try:
        await read_until(process.stdout, " processed ", timeout=60)
        os.kill(process.pid, signal.SIGUSR1)
        restarted = await eventually(lambda: _logged(home, "up.executor_restarted"), 60, "the restart")
        moment = datetime.fromisoformat(json.loads(restarted)["timestamp"])
        await eventually(lambda: _ran_after(home, moment), 40, "a demo job run after the restart")
        assert process.returncode is None
    finally:
        code = await interrupt(process)
    said = (await process.stdout.read()).decode()
    assert code == 0, said
    assert "jetjobs stopped" in said and "Traceback" not in said, said
    for event in ("executor.memory_limit", "up.executor_restarting"):
        assert await _logged(home, event), f"no {event} in the log"


async def test_up_stops_and_fails_when_its_executor_cannot_start_again(tmp_path: Path) -> None:
    home = tmp_path / "home"
    process = await start_up(
        home, JETJOBS_MEMORY_LIMIT_MB=LIMIT_MB, PYTHONPATH=leaking_pythonpath(tmp_path), LEAK_KEPT="1"
    )
    assert process.stdout is not None
    try:
        await read_until(process.stdout, "  stop        Ctrl-C", timeout=60)
        os.kill(process.pid, signal.SIGUSR1)
        code = await asyncio.wait_for(process.wait(), 60)
    finally:
        if process.returncode is None:
            await interrupt(process)
    said = (await process.stdout.read()).decode()
    assert code == 1, said
    assert "Traceback" not in said, said
    assert re.search(
        r"\njetjobs: error: jetjobs up stopped because its executor stopped at its memory limit and could "
        r"not start again: memory_limit_mb \(JETJOBS_MEMORY_LIMIT_MB\) is 192 MiB, but this executor process "
        r"already uses \d+ MiB before running a job: set it to at least \d+ .*\n$",
        said,
    ), said
    assert await _logged(home, "up.executor_failed")
    await gone(home, 20)


async def test_up_refuses_a_memory_limit_it_already_fills(tmp_path: Path) -> None:
    home = tmp_path / "home"
    process = await start_up(home, "--demo", JETJOBS_MEMORY_LIMIT_MB="32")
    assert process.stdout is not None
    try:
        lines = await read_until(process.stdout, "jetjobs: error:", timeout=90)
        code = await process.wait()
    finally:
        if process.returncode is None:
            await interrupt(process)
    lines += (await process.stdout.read()).decode().splitlines(keepends=True)
    assert code == 1, lines
    [said] = [line for line in lines if line.startswith("jetjobs: error:")]
    assert re.fullmatch(
        r"jetjobs: error: memory_limit_mb \(JETJOBS_MEMORY_LIMIT_MB\) is 32 MiB, but this executor "
        r"process already uses \d+ MiB before running a job: set it to at least \d+ \(its size now "
        r"plus 32 MiB for jobs and 16 MiB for its own growth\), or to 0 for no limit\n",
        said,
    ), said
    assert not [line for line in lines if "jetjobs is up" in line or "Traceback" in line], lines
    await gone(home, 20)
