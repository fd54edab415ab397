"""A SIGKILLed executor's working directories are swept by the next executor to start
in the same TMPDIR; those of an executor still running there are kept."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.faults.harness import Faults, Proc, faults
from tests.processes import alive
from tests.stack import eventually

pytestmark = pytest.mark.timeout(120)

# the first attempt writes a file and is killed with its executor; the redelivery just ends
PARTIAL = ["sh", "-c", 'echo partial > out.txt; [ "$JETJOBS_ATTEMPT" = 1 ] && exec sleep 60; exit 0']


@pytest.fixture
async def f(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[Faults]:
    async with faults(nats_url, database_url, tmp_path) as harness:
        yield harness


def dirs_of(tmp: Path, proc: Proc) -> list[Path]:
    return sorted(tmp.glob(f"jetjobs-{proc.pid}-*"))


async def pooled_on(f: Faults, tmp: Path, proc: Proc) -> list[Path]:
    """Run quick jobs until `proc` has run some, and so has a directory pooled."""

    async def probe() -> list[Path]:
        await f.all_final(await f.submit(2, ["true"]), 20)
        return dirs_of(tmp, proc)

    return await eventually(probe, 40, f"executor {proc.pid} to pool a directory")


async def started_pid(f: Faults, job_id: str) -> int:
    async def probe() -> int | None:
        row = (await f.jobs([job_id])).get(job_id)
        return int(row["pid"]) if row is not None and row["status"] == "started" and row["pid"] else None

    return await eventually(probe, 20, f"job {job_id} to start")


async def test_a_killed_executors_directories_are_swept_and_a_live_ones_kept(f: Faults) -> None:
    tmp = f.tmp / "shared-tmp"
    tmp.mkdir()
    doomed = f.executor(slots=2, TMPDIR=str(tmp))
    await f.ready(doomed)
    pooled = await pooled_on(f, tmp, doomed)
    [partial] = await f.submit(1, PARTIAL)
    job_pid = await started_pid(f, partial)
    written = [d for d in dirs_of(tmp, doomed) if (d / "out.txt").exists()]
    assert len(written) == 1 and len(pooled) >= 1

    keeper = f.executor(slots=2, TMPDIR=str(tmp))
    await f.ready(keeper)
    kept = await pooled_on(f, tmp, keeper)

    doomed.signal(signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(job_pid, signal.SIGKILL)  # the job would go on in its own session
    doomed.popen.wait(10)
    await eventually(lambda: _gone(job_pid), 10, "the killed job to be gone")
    left = dirs_of(tmp, doomed)
    assert len(left) >= 2, "the pooled directories and the killed job's"

    survivor = f.executor(slots=1, TMPDIR=str(tmp))
    await f.ready(survivor)

    async def swept() -> bool:
        return not dirs_of(tmp, doomed) and "executor.workdirs_swept" in survivor.tail(200)

    await eventually(swept, 20, "the dead executor's directories to be removed")
    assert f'"removed": {len(left)}' in survivor.tail(200)
    final = (await f.all_final([partial], 30))[partial]
    assert final["status"] == "processed"
    # the keeper drops a directory of its own that the redelivery left files in, if it ran it
    own = 1 if str(final["runner"]).endswith(f"-{keeper.pid}") else 0
    assert len([d for d in kept if not d.exists()]) <= own, "a live executor's directories were removed"


async def _gone(pid: int) -> bool:
    return not alive(pid)
