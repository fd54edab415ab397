"""The whole machine's CPU use over a run, from /proc/stat (Linux only): whether the
run was CPU-bound, and whether something besides the measured processes took part."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .procinfo import TICK


@dataclass(frozen=True)
class CpuTicks:
    """The machine's CPU ticks since boot, summed over its `cores` online cores."""

    cores: int
    idle: int
    """idle + iowait: nothing to run."""
    steal: int
    """taken by the hypervisor for other guests."""
    total: int


def parse_proc_stat(text: str) -> CpuTicks:
    """The aggregate `cpu` line of /proc/stat (user nice system idle iowait irq
    softirq steal guest guest_nice; guest time is already in user and nice)."""
    lines = text.splitlines()
    ticks = [int(v) for v in next(line for line in lines if line.startswith("cpu ")).split()[1:]]
    cores = sum(1 for line in lines if line.startswith("cpu") and line[3].isdigit())
    return CpuTicks(cores=cores, idle=ticks[3] + ticks[4], steal=ticks[7], total=sum(ticks[:8]))


def read() -> CpuTicks | None:
    """Now, or None where there is no /proc/stat."""
    try:
        return parse_proc_stat(Path("/proc/stat").read_text())
    except (OSError, StopIteration):
        return None


def usage(before: CpuTicks, after: CpuTicks, measured: float) -> dict[str, float]:
    """Between two readings: the machine's cores, how many were busy on average (busy
    = not idle, steal included: those cores were not there to run anything), how
    many of them outside the processes that used `measured` CPU seconds meanwhile
    (kernel threads, processes that ended unwaited for, or on a shared machine
    someone else's), the idle and steal shares, and the wall seconds the ticks span."""
    total = after.total - before.total
    if total <= 0:
        return {}
    idle = (after.idle - before.idle) / total
    busy = after.cores * (1 - idle)
    seconds = total / after.cores / TICK
    return {
        "cores": after.cores,
        "busy_cores": round(busy, 3),
        "other_busy_cores": round(busy - measured / seconds, 3),
        "idle_pct": round(idle * 100, 2),
        "steal_pct": round((after.steal - before.steal) / total * 100, 2),
        "seconds": round(seconds, 2),
    }
