"""`jetjobs up` told to stop while its NATS is dead stops every service, cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from tests.acceptance.test_up import _logged, gone, processes_using, read_until, start_up
from tests.stack import eventually

pytestmark = pytest.mark.timeout(180)


def nats_server_of(home: Path) -> int:
    [pid] = [
        pid for pid in processes_using(home) if b"nats-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    return pid


async def test_sigterm_while_nats_is_dead_stops_every_service(tmp_path: Path) -> None:
    home = tmp_path / "home"
    process = await start_up(home, JETJOBS_LOG_LEVEL="info", JETJOBS_METRICS_PORT="0")
    assert process.stdout is not None
    try:
        await read_until(process.stdout, "jetjobs is up", timeout=60)
        os.kill(nats_server_of(home), signal.SIGKILL)
        await eventually(lambda: _logged(home, "nats.disconnected"), 10, "the services to lose NATS")
        process.send_signal(signal.SIGTERM)
        asked = time.monotonic()
        code = await asyncio.wait_for(process.wait(), 90)
        took = time.monotonic() - asked
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    said = (await process.stdout.read()).decode()
    assert code == 0, said
    assert "Traceback" not in said and said.endswith("jetjobs stopped\n"), said
    for event in ("executor.stopped", "scheduler.stopped", "nats.closed_without_drain"):
        assert await _logged(home, event), f"no {event} in the log"
    assert not await _logged(home, "service.stop_failed")
    # nothing waits on a dead server: the runner's goodbye and the scheduler's lease
    # release are skipped (their keys lapse by TTL); only the store's fetch in hand ends
    assert took < 8, f"stopping took {took:.1f} s"
    await gone(home, 20)
