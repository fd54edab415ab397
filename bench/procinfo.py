"""CPU time and peak memory of a process tree, read from /proc and the processes' CPU
clocks (Linux only)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
"""Clock ticks per second, the unit of /proc's CPU counts."""


@dataclass(frozen=True)
class ProcTimes:
    """A process's parent and CPU ticks: its own (utime, stime) and its reaped
    children's (cutime, cstime, which the kernel adds once the process waits for them)."""

    ppid: int
    own: int
    reaped_children: int


def parse_stat(text: str) -> ProcTimes:
    """The content of /proc/PID/stat; the command name may hold spaces and parentheses."""
    fields = text[text.rindex(")") + 2 :].split()  # fields[0] is field 3, `state`
    return ProcTimes(
        ppid=int(fields[1]),
        own=int(fields[11]) + int(fields[12]),
        reaped_children=int(fields[13]) + int(fields[14]),
    )


def _stat(pid: int) -> ProcTimes | None:
    try:
        return parse_stat(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return None


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (times := _stat(int(entry.name))) is not None:
            children.setdefault(times.ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def process_cpu_clock(pid: int) -> int:
    """The clock id of `pid`'s CPU time, all its threads, ended ones included: Linux's
    encoding for clock_getcpuclockid(3), which Python does not wrap."""
    return ((~pid) << 3) | 2  # CPUCLOCK_SCHED of a whole process


def own_cpu_seconds(pid: int) -> float:
    """One process's user + system CPU seconds to the nanosecond (/proc's counts are in
    10 ms ticks, too coarse for a short run); 0.0 once it has ended."""
    try:
        return time.clock_gettime(process_cpu_clock(pid))
    except OSError:
        return 0.0


def cpu_seconds(pid: int, tree: bool = False) -> float:
    """User + system CPU seconds used so far by live processes (the whole tree when
    asked); children already reaped are not in it, see `children_cpu_seconds`."""
    return sum(own_cpu_seconds(one) for one in (descendants(pid) if tree else [pid]))


def below(root: ProcTimes, live: list[ProcTimes]) -> int:
    """CPU ticks of everything below `root`, given its `live` descendants: an ended
    child's ticks are in its parent's reaped-children count once waited for, a live
    one's in its own."""
    return root.reaped_children + sum(times.own + times.reaped_children for times in live)


def children_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of every process `pid` started (and theirs), ended or
    not: a job's process lives for milliseconds, so most are gone before /proc is read."""
    root = _stat(pid)
    if root is None:
        return 0.0
    live = [times for one in descendants(pid)[1:] if (times := _stat(one)) is not None]
    return below(root, live) / TICK


def peak_rss_mb(pid: int) -> float | None:
    """The process's high-water resident set size, in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
