"""A redelivered job waits for the store's ruling on the attempt its dead executor
left running; that wait may take longer than the ack wait (the store is away), and
the message must not be delivered again meanwhile: it would run twice at once on a
live executor."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from bus import Bus, Layout
from tests.faults.harness import ACK_WAIT, Faults, store
from tests.stack import eventually

pytestmark = pytest.mark.timeout(120)


async def test_a_redelivery_waiting_for_the_stores_ruling_runs_once(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    service = store(nats_url, database_url)
    await service.start()
    bus = await Bus.open(nats_url, "jetjobs-faults", Layout(ack_wait=ACK_WAIT))
    h = Faults(nats_url, database_url, bus, tmp_path)
    try:
        first = h.executor(slots=2)
        await h.ready(first)
        [job_id] = await h.submit(1, ["sh", "-c", f"echo $JETJOBS_ATTEMPT >> {ledger}; sleep 3"])
        await eventually(lambda: _started(h, job_id), 20, "the job to start")
        await service.stop()  # no ruling on the attempt left running until it is back
        first.signal(signal.SIGKILL)
        await asyncio.to_thread(first.kill_group)
        second = h.executor(slots=2)
        await h.ready(second)
        await asyncio.sleep(ACK_WAIT * 5)  # redelivered, waiting for a ruling, past several ack waits
        service = store(nats_url, database_url)
        await service.start()
        final = await h.all_final([job_id], 60)
        runs = ledger.read_text().split()
        assert runs == ["1", "2"], (runs, second.tail())
        assert (final[job_id]["status"], final[job_id]["attempt"]) == ("processed", 2)
    finally:
        for proc in h.procs:
            await asyncio.to_thread(proc.kill_group)
        await bus.close()
        await service.stop()


async def _started(h: Faults, job_id: str) -> bool:
    return await h.status(job_id) == "started"
