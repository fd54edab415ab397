"""Removing the working directories that killed executors left behind.

An executor names its directories `jetjobs-<pid>-<start>-<random>`, `<start>` being
when its process started (clock ticks after boot, from /proc). A directory belongs
to a live executor while a process with that pid and that start runs; pid reuse
cannot fool this, a new process on the same pid starts later. Once no such
process runs, nothing will use or read the directory again, so it is removed with
whatever a job left in it. A directory named without a start (by an older
executor) is removed only when no process at all has its pid.

Only this user's private (0700) directories are touched, and never one that is
still some process's working directory (a job of a killed executor still
running). Pids mean something only inside one pid namespace: executors in
separate containers must not share a TMPDIR."""

from __future__ import annotations

import os
import re
import shutil
import stat

PRIVATE = 0o700
NAME = re.compile(r"jetjobs-(\d+)-(?:(\d+)-)?[a-z0-9_]+")


def started(pid: int) -> int | None:
    """When process `pid` started (clock ticks after boot); None when it is gone or a
    zombie (which never runs again), or where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            fields = stat_file.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == b"Z" else int(fields[19])


def prefix() -> str:
    """The start of this process's directory names."""
    pid = os.getpid()
    start = started(pid)
    return f"jetjobs-{pid}-" if start is None else f"jetjobs-{pid}-{start}-"


def sweep(base: str) -> int:
    """Remove the directories of dead executors in `base`; returns how many were removed.
    Without /proc nothing can be told, and nothing is removed."""
    if started(os.getpid()) is None:
        return 0
    uid = os.getuid()
    try:
        with os.scandir(base) as entries:
            names = [e.name for e in entries if e.name.startswith("jetjobs-")]
    except OSError:
        return 0
    dead = [name for name in names if _orphaned(name)]
    if not dead:
        return 0
    busy = _in_use(base)
    removed = 0
    for name in dead:
        path = os.path.join(base, name)
        if name not in busy and _private_at(path, uid):
            shutil.rmtree(path, ignore_errors=True)
            removed += not os.path.lexists(path)
    return removed


def _orphaned(name: str) -> bool:
    """Named as an executor's directory, and that executor's process is gone."""
    found = NAME.fullmatch(name)
    if found is None:
        return False
    now = started(int(found[1]))
    return now is None or (found[2] is not None and now != int(found[2]))


def private(info: os.stat_result, uid: int) -> bool:
    """A real directory (not a link, `info` from lstat) of user `uid`, mode 0700: what
    an executor makes for a job, and all it ever reuses or removes."""
    return stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == PRIVATE and info.st_uid == uid


def _private_at(path: str, uid: int) -> bool:
    try:
        return private(os.lstat(path), uid)
    except OSError:
        return False


def _in_use(base: str) -> set[str]:
    """Names of the entries of `base` that a running process works in (or below)."""
    root = os.path.realpath(base) + os.sep
    busy: set[str] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry.name}/cwd")
        except OSError:
            continue
        if cwd.startswith(root):
            busy.add(cwd[len(root) :].split(os.sep, 1)[0])
    return busy
