"""A job started by `posix_spawn` gets what Popen would give it: its own session,
its working directory, default SIGPIPE and SIGXFSZ, and no descriptor of the
executor's; and the executor stays in its own directory."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from executor import process, spawning
from executor.process import Exited, Launch, Running, launch

FAR = 1e9

REPORT = """
import json, os
print(json.dumps({
    "cwd": os.getcwd(),
    "own_session": os.getsid(0) == os.getpid(),
    "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
}))
"""


async def output(argv: list[str], cwd: Path) -> str:
    """What a job started in `cwd` printed."""
    running = await launch(Launch(argv, dict(os.environ), str(cwd), 100_000, "unit"))
    assert isinstance(running, Running)
    assert await running.finish(FAR, asyncio.Event(), 5) == Exited(0), running.stderr.text()
    return running.stdout.text()


def no_popen(*args: object, **kwargs: object) -> subprocess.Popen[bytes]:
    raise AssertionError("started through Popen")


@pytest.mark.skipif(not spawning.USABLE, reason="posix_spawn is used on Linux only")
async def test_a_job_with_a_known_file_starts_as_popen_would_start_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "_popen", no_popen)
    inherited = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(inherited, True)
    spawning._home.cache_clear()  # the executor's descriptors are sealed before its first spawn
    home = os.getcwd()
    try:
        seen: dict[str, Any] = json.loads(await output([sys.executable, "-c", REPORT], tmp_path))
        ignored = int((await output(["grep", "SigIgn", "/proc/self/status"], tmp_path)).split()[1], 16)
    finally:
        os.close(inherited)
    assert seen["cwd"] == str(tmp_path) and os.getcwd() == home
    assert seen["own_session"]
    for default in (signal.SIGPIPE, signal.SIGXFSZ):
        assert not ignored & (1 << (default - 1)), signal.Signals(default).name
    assert inherited not in seen["fds"] and {0, 1, 2} <= set(seen["fds"])


@pytest.mark.skipif(not spawning.USABLE, reason="posix_spawn is used on Linux only")
async def test_a_relative_command_is_found_from_the_jobs_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "_popen", no_popen)
    script = tmp_path / "greet"
    script.write_text("#!/bin/sh\necho hello from $(pwd)\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    running = await launch(Launch(["./greet"], dict(os.environ), str(tmp_path), 1000, "unit"))
    assert isinstance(running, Running)
    assert await running.finish(FAR, asyncio.Event(), 5) == Exited(0)
    assert running.stdout.text() == f"hello from {tmp_path}\n"


async def test_a_pipeline_ends_when_its_reader_does(tmp_path: Path) -> None:
    """With SIGPIPE still ignored, `yes` would write into a closed pipe forever
    (or, as GNU yes does, fail with a write error)."""
    running = await launch(
        Launch(["sh", "-c", "yes | head -n 1"], dict(os.environ), str(tmp_path), 1000, "unit")
    )
    assert isinstance(running, Running)
    deadline = asyncio.get_running_loop().time() + 10
    assert await running.finish(deadline, asyncio.Event(), 1) == Exited(0)
    assert (running.stdout.text(), running.stderr.text()) == ("y\n", "")


async def test_a_job_in_a_directory_that_is_gone_cannot_start(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    started = await launch(Launch(["true"], dict(os.environ), str(gone), 1000, "unit"))
    assert not isinstance(started, Running)
    assert Path.cwd().exists()
