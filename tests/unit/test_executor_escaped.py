"""What a finished job left running, judged against real processes: whatever works in
its directory or is in its session is killed, nothing else is, and the directory
serves again only once no process works in it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from executor import leftovers
from executor.joblog import JobLog
from executor.metrics import unobserved
from executor.workdirs import Workdirs
from tests.processes import alive

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


@contextlib.contextmanager
def started(argv: list[str], cwd: Path, new_session: bool = True) -> Iterator[subprocess.Popen[bytes]]:
    """A process of the test, in a session of its own unless told; killed at the end."""
    process = subprocess.Popen(argv, cwd=cwd, start_new_session=new_session)
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait()


def reaped(process: subprocess.Popen[bytes]) -> bool:
    """Gone: a child of the test is a zombie until the test reaps it."""
    deadline = time.monotonic() + 5
    while alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return not alive(process.pid)


def wait_until_in(folder: Path, pid: int) -> None:
    deadline = time.monotonic() + 10
    while os.readlink(f"/proc/{pid}/cwd") != str(folder) and time.monotonic() < deadline:
        time.sleep(0.01)


def test_what_works_in_the_directory_or_is_in_the_session_is_killed_and_nothing_else(tmp_path: Path) -> None:
    job = tmp_path / "job"
    (job / "sub").mkdir(parents=True)
    with (
        started(["sleep", "60"], job / "sub") as below_it,
        started(["sh", "-c", "cd / && exec sleep 61"], tmp_path) as in_its_session,
        started(["sleep", "62"], tmp_path) as elsewhere,
        started(["sleep", "63"], job, new_session=False) as in_our_session,
    ):
        wait_until_in(Path("/"), in_its_session.pid)
        [vacated] = leftovers.stop_escaped(str(tmp_path), [("job", in_its_session.pid)], grace=1.0)
        found = {(one.pid, one.found) for one in vacated.killed}
        assert found == {(below_it.pid, "workdir"), (in_its_session.pid, "session")}
        assert not vacated.busy
        assert reaped(below_it) and reaped(in_its_session)
        assert alive(elsewhere.pid) and alive(in_our_session.pid)


def test_term_ignored_is_followed_by_kill_after_the_grace(tmp_path: Path) -> None:
    (tmp_path / "job").mkdir()
    with started(["sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"], tmp_path / "job") as stubborn:
        time.sleep(0.2)  # the trap is set
        begun = time.monotonic()
        [vacated] = leftovers.stop_escaped(str(tmp_path), [("job", 0)], grace=0.3)
        assert stubborn.pid in {one.pid for one in vacated.killed}
        assert time.monotonic() - begun >= 0.3
        assert reaped(stubborn) and leftovers.escaped(str(tmp_path), [("job", 0)]) == [[]]


def test_one_look_tells_each_jobs_leftovers_apart(tmp_path: Path) -> None:
    for name in ("one", "two", "three"):
        (tmp_path / name).mkdir()
    with (
        started(["sleep", "64"], tmp_path / "one") as of_one,
        started(["sleep", "65"], tmp_path / "two") as of_two,
    ):
        jobs = [("one", 0), ("two", 0), ("three", 0)]
        found = leftovers.stop_escaped(str(tmp_path), jobs, grace=1.0)
        assert [[one.pid for one in vacated.killed] for vacated in found] == [[of_one.pid], [of_two.pid], []]
        assert reaped(of_one) and reaped(of_two)


def test_with_nothing_left_nothing_is_killed(tmp_path: Path) -> None:
    (tmp_path / "job").mkdir()
    assert leftovers.stop_escaped(str(tmp_path), [("job", 0)], grace=5.0) == [
        leftovers.Vacated((), busy=False)
    ]


async def until(check: Callable[[], bool]) -> bool:
    for _ in range(500):
        if check():
            return True
        await asyncio.sleep(0.01)
    return False


async def test_a_directory_is_pooled_only_once_what_its_job_left_is_dead(tmp_path: Path) -> None:
    pool = Workdirs(keep=1, base=str(tmp_path))
    with contextlib.ExitStack() as stack:
        async with pool.attempt() as first:
            leftover = stack.enter_context(started(["sleep", "60"], Path(first.path)))
            first.hosts(leftover.pid, 5.0, JobLog(job_id="first"), unobserved())
        assert pool.idle == 0  # still being vacated
        async with pool.attempt() as second:
            assert second.path != first.path
        assert await until(lambda: not alive(leftover.pid) and pool.idle == 1)
        assert pool._take() in (first.path, second.path)
    pool.close()


async def test_a_directory_written_into_while_it_was_vacated_is_removed(tmp_path: Path) -> None:
    pool = Workdirs(keep=1, base=str(tmp_path))
    script = "trap 'echo late > written; exit' TERM; while :; do sleep 0.05; done"
    with contextlib.ExitStack() as stack:
        async with pool.attempt() as used:
            leftover = stack.enter_context(started(["sh", "-c", script], Path(used.path)))
            await asyncio.sleep(0.2)  # the trap is set
            used.hosts(leftover.pid, 5.0, JobLog(job_id="used"), unobserved())
            assert used.left_clean()
        assert await until(lambda: not Path(used.path).exists())
        assert pool.idle == 0
    pool.close()


def test_a_running_jobs_session_is_never_taken_for_a_finished_ones(tmp_path: Path) -> None:
    (tmp_path / "done").mkdir()
    with started(["sleep", "66"], tmp_path) as running:  # leads its own session, as a job does
        # a finished job whose first pid the running one has taken over since
        [vacated] = leftovers.stop_escaped(
            str(tmp_path), [("done", running.pid)], grace=1.0, spare={running.pid}
        )
        assert vacated.killed == () and alive(running.pid)
