"""Which processes `stop_orphans` kills: whole sessions of jobs whose executor is
dead, judged against real processes; never a session led from elsewhere, nor the
job of a live executor."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from executor import leftovers
from tests.processes import alive, below

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def workdir(base: Path, name: str) -> Path:
    path = base / name
    path.mkdir(mode=0o700)
    return path


@contextlib.contextmanager
def session(script: str, cwd: Path, members: int) -> Iterator[list[int]]:
    """`sh -c script` leading a session of its own, once `members` processes run in it;
    the session's pids, leader first. Killed at the end, whatever happened."""
    leader = subprocess.Popen(["sh", "-c", script], cwd=cwd, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while len(below(leader.pid)) < members - 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        pids = [leader.pid, *below(leader.pid)]
        assert len(pids) == members
        yield pids
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, signal.SIGKILL)
        leader.wait()


def wait_until_in(folder: Path, pid: int) -> None:
    deadline = time.monotonic() + 10
    while os.readlink(f"/proc/{pid}/cwd") != str(folder) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert os.readlink(f"/proc/{pid}/cwd") == str(folder)


def test_a_dead_executors_job_is_killed_with_its_whole_session_and_its_directory_goes(
    tmp_path: Path,
) -> None:
    busy = workdir(tmp_path, f"jetjobs-{dead_pid()}-1-busybusy")
    script = "sleep 60 & (cd / && exec sleep 61) & exec sleep 62"  # one child works elsewhere
    with session(script, busy, members=3) as pids:
        [orphans] = leftovers.stop_orphans(str(tmp_path))
        assert orphans == leftovers.Orphans(busy.name, tuple(sorted(pids)))
        assert not any(alive(pid) for pid in pids)
        assert leftovers.sweep(str(tmp_path)) == 1
        assert not busy.exists()


def test_a_session_led_from_elsewhere_is_not_killed(tmp_path: Path) -> None:
    busy = workdir(tmp_path, f"jetjobs-{dead_pid()}-1-busybusy")
    script = f"(cd {busy} && exec sleep 60) & exec sleep 61"  # its leader works outside
    with session(script, tmp_path, members=2) as pids:
        wait_until_in(busy, pids[1])
        assert leftovers.stop_orphans(str(tmp_path)) == []
        assert all(alive(pid) for pid in pids)
        assert leftovers.sweep(str(tmp_path)) == 0


def test_this_processs_own_session_is_not_killed(tmp_path: Path) -> None:
    busy = workdir(tmp_path, f"jetjobs-{dead_pid()}-1-busybusy")
    ours = subprocess.Popen(["sleep", "60"], cwd=busy)  # in the session of the test run
    try:
        assert leftovers.stop_orphans(str(tmp_path)) == []
        assert alive(ours.pid)
    finally:
        ours.kill()
        ours.wait()


def test_the_jobs_of_a_live_executor_are_not_killed(tmp_path: Path) -> None:
    mine = workdir(tmp_path, f"{leftovers.prefix()}livelive")
    with session("sleep 60 & exec sleep 61", mine, members=2) as pids:
        assert leftovers.stop_orphans(str(tmp_path)) == []
        assert all(alive(pid) for pid in pids)
