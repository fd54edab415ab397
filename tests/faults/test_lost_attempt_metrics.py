"""An attempt whose executor was SIGKILLed is counted as lost though the job goes on:
the dead executor cannot count it, and the job's own outcome is its last attempt's."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from bus.telemetry import Telemetry
from tests.faults.harness import faults
from tests.stack import eventually

pytestmark = pytest.mark.timeout(90)


def _value(telemetry: Telemetry, name: str, status: str, kind: str) -> float | None:
    return telemetry.registry.get_sample_value(name, {"status": status, "kind": kind})


async def test_a_lost_attempt_counts_once_and_the_job_by_its_last_attempt(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    telemetry = Telemetry()
    async with faults(nats_url, database_url, tmp_path, telemetry=telemetry) as f:
        doomed = f.executor(slots=1)
        await f.ready(doomed)
        [job_id] = await f.submit(1, ["sh", "-c", "sleep 3"])

        async def started() -> bool:
            row = (await f.jobs([job_id])).get(job_id)
            return row is not None and row["status"] == "started"

        await eventually(started, 20, f"job {job_id} to start")
        doomed.signal(signal.SIGKILL)
        survivor = f.executor(slots=1)
        await f.ready(survivor)
        job = (await f.all_final([job_id], 30))[job_id]
        assert job["status"] == "processed" and job["attempt"] == 2

        async def processed() -> bool:
            return _value(telemetry, "jetjobs_store_job_outcomes_total", "processed", "") == 1

        await eventually(processed, 5, "the job's outcome to be counted")
        attempts = "jetjobs_store_attempt_outcomes_total"
        assert _value(telemetry, attempts, "error", "lost") == 1
        assert _value(telemetry, attempts, "processed", "") == 1
        assert _value(telemetry, "jetjobs_store_job_outcomes_total", "error", "lost") == 0
