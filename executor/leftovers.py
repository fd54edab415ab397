"""Removing the working directories that killed executors left behind, and
killing the processes a finished job left running (`stop_escaped`).

An executor names its directories `jetjobs-<pid>-<start>-<random>`, `<start>` being
when its process started (clock ticks after boot, from /proc). A directory belongs
to a live executor while a process with that pid and that start runs; pid reuse
cannot fool this, a new process on the same pid starts later. Once no such
process runs, nothing will use or read the directory again, so it is removed with
whatever a job left in it. A directory named without a start (by an older
executor) is removed only when no process at all has its pid.

Only this user's private (0700) directories are touched, and never one that is
still some process's working directory. Such a process is a job of a killed
executor running on (its session outlives the executor, and JetStream hands the
job to another executor meanwhile): `stop_orphans` kills its whole session, after
which the directory goes like the others. Pids mean something only inside one
pid namespace: executors in separate containers must not share a TMPDIR."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

PRIVATE = 0o700
NAME = re.compile(r"jetjobs-(\d+)-(?:(\d+)-)?[a-z0-9_]+")
DELETED = " (deleted)"
KILL_ROUNDS = 5
"""Times a session is looked through and killed: a process forked meanwhile is
caught by the next round (or by the next check)."""
ROUND_PAUSE = 0.05
"""Seconds between rounds: time for the killed to die, and for a fork to show."""
GONE_WITHIN = 2.0
"""Seconds to wait for killed processes to let go of their directories."""


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
    return {name for pid in _pids() if (name := _working_in(pid, root)) is not None}


@dataclass(frozen=True)
class Orphans:
    """The processes killed because they worked on in a dead executor's directory."""

    directory: str
    pids: tuple[int, ...]


def stop_orphans(base: str) -> list[Orphans]:
    """Kill every session one of whose processes works in a dead executor's directory
    in `base` (SIGKILL, each of its processes), and wait for them to be gone.

    Only this user's processes in this pid namespace, never this process's own
    session, and only a session whose leader works in such a directory too or has
    ended (a job's first process leads its session; a session whose leader works
    elsewhere is someone else's). A job that left both its directory and its
    session cannot be told from anything else, and is not found."""
    if started(os.getpid()) is None:
        return []
    found = _working_in_dead(base)
    own = os.getsid(0)
    doomed: dict[int, str] = {}
    for session, directory in found.values():
        if session not in (own, 0) and (session in found or started(session) is None):
            doomed.setdefault(session, directory)
    if not doomed:
        return []
    killed = _kill_sessions(set(doomed))
    _wait_gone([pid for pids in killed.values() for pid in pids])
    by_directory: dict[str, list[int]] = {}
    for session, pids in killed.items():
        by_directory.setdefault(doomed[session], []).extend(pids)
    return [Orphans(directory, tuple(sorted(pids))) for directory, pids in sorted(by_directory.items())]


def _working_in_dead(base: str) -> dict[int, tuple[int, str]]:
    """This user's processes (of this pid namespace) that work in a dead executor's
    directory in `base`: pid → (session, directory name). Only the working directory
    of each process is looked at, unless it is such a directory."""
    root = os.path.realpath(base) + os.sep
    dead: dict[str, bool] = {}
    found: dict[int, tuple[int, str]] = {}
    for pid in _pids():
        name = _working_in(pid, root)
        if name is None:
            continue
        if name not in dead:
            dead[name] = _orphaned(name)
        session = _session_of_mine(pid) if dead[name] else None
        if session is not None:
            found[pid] = (session, name)
    return found


def _pids() -> list[int]:
    with os.scandir("/proc") as entries:
        return [int(entry.name) for entry in entries if entry.name.isdigit()]


def _working_in(pid: int, root: str) -> str | None:
    """The entry of the folder `root` that process `pid` works in (or below), if any."""
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd").removesuffix(DELETED)
    except OSError:
        return None
    return cwd[len(root) :].split(os.sep, 1)[0] if cwd.startswith(root) else None


def _session_of_mine(pid: int) -> int | None:
    """The session of process `pid`, when it is this user's, of this pid namespace
    and not a zombie (which runs no more)."""
    try:
        if os.stat(f"/proc/{pid}").st_uid != os.getuid():
            return None
        if os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid"):
            return None
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            fields = stat_file.read().rsplit(b")", 1)[1].split()
        return None if fields[0] == b"Z" else int(fields[3])
    except (OSError, IndexError, ValueError):
        return None


def _kill_sessions(sessions: set[int]) -> dict[int, list[int]]:
    """SIGKILL every process of these sessions, round after round until none is left."""
    killed: dict[int, list[int]] = {}
    for _ in range(KILL_ROUNDS):
        members = [(pid, session) for pid in _pids() if (session := _session_of_mine(pid)) in sessions]
        if not members:
            break
        for pid, session in members:
            if _kill(pid, session):
                killed.setdefault(session, []).append(pid)
        time.sleep(ROUND_PAUSE)
    return {session: sorted(set(pids)) for session, pids in killed.items()}


def _kill(pid: int, session: int, sig: signal.Signals = signal.SIGKILL) -> bool:
    """Send `sig` to `pid` if it is still in `session`; through a pidfd where there is
    one, so that a pid reused in between is never hit."""
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except (AttributeError, OSError):
        pidfd = None
    try:
        if _session_of_mine(pid) != session:
            return False
        if pidfd is None:
            os.kill(pid, sig)
        else:
            signal.pidfd_send_signal(pidfd, sig)
        return True
    except OSError:
        return False
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _wait_gone(pids: list[int]) -> None:
    """Until the killed processes have ended (a zombie has let go of its directory)."""
    deadline = time.monotonic() + GONE_WITHIN
    while any(started(pid) is not None for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.01)


@dataclass(frozen=True)
class Escaped:
    """A process a finished job left running, and how it was told the job's:
    `workdir` (it works in the job's directory) or `session` (it is in the job's)."""

    pid: int
    session: int
    found: str


@dataclass(frozen=True)
class Vacated:
    """What was killed when a job's directory was vacated, and whether some process
    still works in it (one that no signal ends, in uninterruptible sleep say)."""

    killed: tuple[Escaped, ...]
    busy: bool


def stop_escaped(
    base: str, jobs: Sequence[tuple[str, int]], grace: float, spare: Collection[int] = ()
) -> list[Vacated]:
    """Kill what finished jobs left running, each job a (directory name under `base`,
    session) pair: SIGTERM, then after `grace` seconds SIGKILL, round after round until
    a look finds none. A job's process is one that works in its directory (or below),
    or that is in its session, the one its first process led (that pid stays taken
    while any process is in the session; a session in `spare`, a running job's that took a
    finished job's pid over, is never one). One walk of /proc looks for every job."""
    found = escaped(base, jobs, spare)
    if not any(found):
        return [Vacated((), busy=False) for _ in jobs]
    killed = [{one.pid: one for one in each if _kill(one.pid, one.session, signal.SIGTERM)} for each in found]
    deadline = time.monotonic() + grace
    while any(started(pid) is not None for each in killed for pid in each) and time.monotonic() < deadline:
        time.sleep(0.01)
    for _ in range(KILL_ROUNDS):
        left = escaped(base, jobs, spare)
        if not any(left):
            break
        for each, still in zip(killed, left, strict=True):
            for one in still:
                if _kill(one.pid, one.session):
                    each.setdefault(one.pid, one)
        _wait_gone([one.pid for still in left for one in still])
    else:
        left = escaped(base, jobs, spare)
    return [Vacated(tuple(each.values()), busy=bool(still)) for each, still in zip(killed, left, strict=True)]


def escaped(base: str, jobs: Sequence[tuple[str, int]], spare: Collection[int] = ()) -> list[list[Escaped]]:
    """For each job, a (directory name under `base`, session) pair, this user's running
    processes of this pid namespace that work in its directory (or below) or are in its
    session; never one of this process's own session. Each process costs a readlink and
    a getsid, whatever the number of jobs; only those found have their /proc entry read."""
    found: list[list[Escaped]] = [[] for _ in jobs]
    if not jobs or started(os.getpid()) is None:
        return found
    root = os.path.realpath(base) + os.sep
    directories = {name: index for index, (name, _) in enumerate(jobs)}
    sessions = {
        session: index for index, (_, session) in enumerate(jobs) if session > 0 and session not in spare
    }
    own = os.getsid(0)
    for pid in _pids():
        owner = _owner(pid, root, directories, sessions)
        if owner is not None and (mine := _session_of_mine(pid)) is not None and mine != own:
            index, how = owner
            found[index].append(Escaped(pid, mine, how))
    return found


def _owner(
    pid: int, root: str, directories: Mapping[str, int], sessions: Mapping[int, int]
) -> tuple[int, str] | None:
    """(which job, how it was found) of a process, or None."""
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd").removesuffix(DELETED)
        if cwd.startswith(root):
            index = directories.get(cwd[len(root) :].split(os.sep, 1)[0])
            if index is not None:
                return index, "workdir"
        index = sessions.get(os.getsid(pid)) if sessions else None
        return None if index is None else (index, "session")
    except OSError:
        return None
