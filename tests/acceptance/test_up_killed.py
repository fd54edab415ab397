"""A `jetjobs up` killed outright leaves its `endpoints.json` behind: client commands
beside it say at once that no `up` runs for the home, rather than wait on a port
none serves, and the next `up` takes the home over. (Its servers stop when it dies.)"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from tests.acceptance.cli import clean_env, jetjobs
from tests.acceptance.test_up import gone, interrupt, read_until, start_up

pytestmark = pytest.mark.timeout(180)

AT_ONCE = 5.0
"""Seconds a client command may take to say no `up` runs: well under a connection timeout."""


async def _stopped(up: asyncio.subprocess.Process, home: Path) -> None:
    """`up` killed if still running; its servers, which stop when it dies, waited
    for (any left after a while are killed by pid, and the test fails)."""
    if up.returncode is None:
        os.kill(up.pid, signal.SIGKILL)
        await up.wait()
    await gone(home, timeout=30)


async def test_client_commands_beside_a_killed_up_say_at_once_that_none_runs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    up = await start_up(home)
    try:
        assert up.stdout is not None
        await read_until(up.stdout, "jetjobs is up", timeout=60)
        os.kill(up.pid, signal.SIGKILL)
        await up.wait()
        assert (home / "endpoints.json").exists()
        started = time.monotonic()
        listed = await jetjobs("--home", str(home), "company", "list", env=clean_env())
        took = time.monotonic() - started
        assert (listed.code, listed.out) == (1, ""), listed
        assert listed.err == (
            f"jetjobs: error: no jetjobs up is running for home {home}: start it with "
            f"`jetjobs up --home {home}`, or give --nats-url (JETJOBS_NATS_URL)\n"
        )
        assert took < AT_ONCE, f"took {took:.1f} s"
    finally:
        await _stopped(up, home)
    again = await start_up(home)
    try:
        assert again.stdout is not None
        await read_until(again.stdout, "jetjobs is up", timeout=60)
        listed = await jetjobs("--home", str(home), "--json", "company", "list", env=clean_env())
        assert listed.code == 0, listed
        assert await interrupt(again) == 0
    finally:
        await _stopped(again, home)
