"""A server `jetjobs up` started exits under it (killed, or stopped by hand): `up` says
which and how, stops every service without waiting on the dead server, and fails,
so a supervisor learns of it."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.acceptance.test_up import _logged, gone, processes_using, read_until, start_up

pytestmark = pytest.mark.timeout(180)

NOTICED_AND_STOPPED = 8.0
"""Seconds from the server's end to `up`'s: a look every 0.5 s, then a stop that
waits on no dead server."""


def nats_server_of(home: Path) -> int:
    [pid] = [
        pid for pid in processes_using(home) if b"nats-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    return pid


def postmaster_of(home: Path) -> int:
    return int((home / "postgres" / "postmaster.pid").read_text().splitlines()[0])


@dataclass(frozen=True)
class Ending:
    """How a server ends under `up`, and what `up` must then say of it."""

    server: str
    pid_of: Callable[[Path], int]
    sig: signal.Signals
    how: str
    log: str
    logged: tuple[str, ...] = ()


ENDINGS = {
    # with NATS gone, each connection is closed at once, not drained into the void
    "nats-killed": Ending(
        "nats-server",
        nats_server_of,
        signal.SIGKILL,
        "killed by SIGKILL",
        "nats/nats.log",
        ("nats.closed_without_drain",),
    ),
    "postgres-killed": Ending(
        "PostgreSQL", postmaster_of, signal.SIGKILL, "killed by SIGKILL", "postgres/postgres.log"
    ),
    "postgres-stopped": Ending(  # as `pg_ctl stop` does
        "PostgreSQL", postmaster_of, signal.SIGINT, "exit code 0", "postgres/postgres.log"
    ),
}


@pytest.mark.parametrize("ending", ENDINGS.values(), ids=list(ENDINGS))
async def test_up_stops_and_fails_when_a_server_it_started_exits(tmp_path: Path, ending: Ending) -> None:
    home = tmp_path / "home"
    process = await start_up(home, JETJOBS_LOG_LEVEL="info", JETJOBS_METRICS_PORT="0")
    assert process.stdout is not None
    try:
        await read_until(process.stdout, "jetjobs is up", timeout=60)
        pid = ending.pid_of(home)
        os.kill(pid, ending.sig)
        ended = time.monotonic()
        code = await asyncio.wait_for(process.wait(), 60)
        took = time.monotonic() - ended
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    said = (await process.stdout.read()).decode()
    told = f"{ending.server} (pid {pid}) exited, {ending.how}; its log: {home.resolve() / ending.log}"
    assert code == 1, said
    assert "Traceback" not in said, said
    assert f"  stop        Ctrl-C\n{told}\nstopping: " in said, said
    assert said.endswith(f"jetjobs: error: jetjobs up stopped because {told}\n"), said
    assert took < NOTICED_AND_STOPPED, f"up ended {took:.1f} s after {ending.server}"
    for event in ("up.server_exited", "executor.stopped", "scheduler.stopped", *ending.logged):
        assert await _logged(home, event), f"no {event} in the log"
    assert not await _logged(home, "service.stop_failed")
    assert not (home / "endpoints.json").exists()
    await gone(home, 20)
