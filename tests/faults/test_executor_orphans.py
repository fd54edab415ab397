"""A SIGKILLed executor's job runs on in its own session; an executor sharing its
TMPDIR kills that session (every process of it, double-forked ones too), when it
starts or, already running, soon after: the job's redelivery is the only copy left
and runs to completion."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.faults.harness import Faults, Proc, faults
from tests.processes import alive
from tests.stack import eventually

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def f(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[Faults]:
    async with faults(nats_url, database_url, tmp_path) as harness:
        yield harness


def ticking(log: Path, ticks: Path) -> list[str]:
    """A job whose first attempt leaves a child and an orphaned grandchild in its
    session and appends to `ticks` until killed; its later attempts just end."""
    log_at, ticks_at = shlex.quote(str(log)), shlex.quote(str(ticks))
    script = f"""
echo "start $JETJOBS_ATTEMPT $$" >> {log_at}
if [ "$JETJOBS_ATTEMPT" = 1 ]; then
  sleep 300 & echo "pid $!" >> {log_at}
  ( sleep 301 & echo "pid $!" >> {log_at} ) &
  while :; do echo tick >> {ticks_at}; sleep 0.2; done
fi
exit 0
"""
    return ["sh", "-c", script]


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


async def first_attempt_pids(log: Path) -> list[int]:
    """The first attempt's shell and the two processes it left, once all have started."""

    async def probe() -> list[int] | None:
        pids = [int(line.split()[-1]) for line in lines(log) if line.startswith(("start 1 ", "pid "))]
        return pids if len(pids) == 3 else None

    return await eventually(probe, 30, "the first attempt and its processes to start")


async def logged(proc: Proc, event: str) -> None:
    async def probe() -> bool:
        return f'"event": "{event}"' in proc.tail(200)

    await eventually(probe, 20, f"{event} in the log of executor {proc.pid}")


async def all_gone(pids: list[int]) -> bool:
    return not any(alive(pid) for pid in pids)


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@contextlib.contextmanager
def killed_at_the_end(pids: list[int]) -> Iterator[None]:
    """Whatever the test found, the job's processes do not outlive it."""
    try:
        yield
    finally:
        for pid in pids:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


async def job_on(f: Faults, doomed: Proc) -> tuple[str, list[int], Path]:
    """The job, started on `doomed`: its id, its processes and its log."""
    log = f.tmp / "job.log"
    [job_id] = await f.submit(1, ticking(log, f.tmp / "ticks"))
    pids = await first_attempt_pids(log)
    assert parent_of(pids[0]) == doomed.pid, "the job runs on the executor to be killed"
    return job_id, pids, log


def kill(doomed: Proc, pids: list[int]) -> None:
    doomed.signal(signal.SIGKILL)
    doomed.popen.wait(10)
    assert all(alive(pid) for pid in pids), "the job outlives its executor"


async def ran_again_once(f: Faults, job_id: str, log: Path) -> None:
    row = (await f.all_final([job_id], 60))[job_id]
    assert (row["status"], row["attempt"]) == ("processed", 2)
    starts = [line.split()[1] for line in lines(log) if line.startswith("start ")]
    assert starts == ["1", "2"]


async def test_an_executor_starting_kills_the_job_a_killed_executor_left_running(f: Faults) -> None:
    tmp = f.tmp / "shared-tmp"
    tmp.mkdir()
    doomed = f.executor(slots=1, TMPDIR=str(tmp))
    await f.ready(doomed)
    job_id, pids, log = await job_on(f, doomed)
    with killed_at_the_end(pids):
        kill(doomed, pids)
        survivor = f.executor(slots=1, TMPDIR=str(tmp))
        await f.ready(survivor)
        await eventually(lambda: all_gone(pids), 30, "the killed executor's job to be stopped")
        await logged(survivor, "executor.orphans_killed")
        await ran_again_once(f, job_id, log)
        assert not list(tmp.glob(f"jetjobs-{doomed.pid}-*")), "its directories are removed"


async def test_a_running_executor_kills_the_job_of_an_executor_killed_beside_it(f: Faults) -> None:
    tmp = f.tmp / "shared-tmp"
    tmp.mkdir()
    doomed = f.executor(slots=1, TMPDIR=str(tmp))
    await f.ready(doomed)
    job_id, pids, log = await job_on(f, doomed)
    with killed_at_the_end(pids):
        survivor = f.executor(slots=1, TMPDIR=str(tmp))
        await f.ready(survivor)
        await logged(survivor, "executor.workdirs_swept")
        kill(doomed, pids)
        await eventually(lambda: all_gone(pids), 30, "the killed executor's job to be stopped")
        await logged(survivor, "executor.orphans_killed")
        await ran_again_once(f, job_id, log)
