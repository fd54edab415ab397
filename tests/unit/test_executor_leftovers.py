"""Sweeping what killed executors left in a shared TMPDIR, judged against real processes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from executor import leftovers
from executor.workdirs import Workdirs

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def dead_pid() -> int:
    """The pid of a process that has ended and been reaped."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def leftover(base: Path, name: str, mode: int = 0o700, files: bool = False) -> Path:
    path = base / name
    path.mkdir()
    if files:
        (path / "sub").mkdir()
        (path / "sub" / "out.txt").write_text("a crashed job's file")
    path.chmod(mode)
    return path


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that is not an executor (as one that took a dead executor's pid)."""
    process = subprocess.Popen(["sleep", "60"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def test_directories_of_dead_executors_go_with_what_their_jobs_left(tmp_path: Path) -> None:
    pid = dead_pid()
    gone = [
        leftover(tmp_path, f"jetjobs-{pid}-12345-abcd_123"),
        leftover(tmp_path, f"jetjobs-{pid}-12345-efgh4567", files=True),
        leftover(tmp_path, f"jetjobs-{pid}-olderfmt"),  # named by an executor before starts were
    ]
    assert leftovers.sweep(str(tmp_path)) == 3
    assert not any(path.exists() for path in gone)


def test_a_live_executor_keeps_its_directories(tmp_path: Path) -> None:
    pool = Workdirs(keep=2, base=str(tmp_path))
    mine = Path(pool._take())
    (mine / "result.json").write_text("{}")  # a job of ours is writing in it
    start = leftovers.started(os.getpid())
    older = leftover(tmp_path, f"jetjobs-{os.getpid()}-olderfmt")  # our pid, no start: could be ours
    assert mine.name.startswith(f"jetjobs-{os.getpid()}-{start}-")
    assert leftovers.sweep(str(tmp_path)) == 0
    assert mine.exists() and older.exists()


def test_a_reused_pid_does_not_keep_a_dead_executors_directories(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    start = leftovers.started(sleeper.pid)
    assert start is not None
    earlier = leftover(tmp_path, f"jetjobs-{sleeper.pid}-{start - 1}-abcdefgh", files=True)
    same = leftover(tmp_path, f"jetjobs-{sleeper.pid}-{start}-abcdefgh")
    assert leftovers.sweep(str(tmp_path)) == 1
    assert not earlier.exists() and same.exists()


def test_only_private_directories_of_this_user_named_as_an_executors(tmp_path: Path) -> None:
    pid = dead_pid()
    opened = leftover(tmp_path, f"jetjobs-{pid}-1-opened00", mode=0o755)
    foreign = leftover(tmp_path, f"jetjobs-x{pid}-1-abcdefgh")
    other = leftover(tmp_path, f"jetjobsy-{pid}-1-abcdefgh")
    target = leftover(tmp_path / "..", f"{tmp_path.name}-target")
    link = tmp_path / f"jetjobs-{pid}-1-linklink"
    link.symlink_to(target)
    file = tmp_path / f"jetjobs-{pid}-1-filefile"
    file.write_text("x")
    try:
        assert leftovers.sweep(str(tmp_path)) == 0
        assert all(p.exists() for p in (opened, foreign, other, target, link, file))
    finally:
        target.rmdir()


def test_a_directory_a_process_still_works_in_is_kept(tmp_path: Path) -> None:
    pid = dead_pid()
    busy = leftover(tmp_path, f"jetjobs-{pid}-1-busybusy", files=True)
    idle = leftover(tmp_path, f"jetjobs-{pid}-1-idleidle")
    orphan = subprocess.Popen(["sleep", "60"], cwd=busy / "sub")  # a killed executor's job, running on
    try:
        assert leftovers.sweep(str(tmp_path)) == 1
        assert busy.exists() and not idle.exists()
    finally:
        orphan.kill()
        orphan.wait()
    assert leftovers.sweep(str(tmp_path)) == 1
    assert not busy.exists()
