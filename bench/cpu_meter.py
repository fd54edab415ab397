"""Where a run's CPU went: each process's CPU seconds between `start()` and `stop()`,
and the whole machine's use over the same time (was the run CPU-bound?)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial

from . import machine_cpu
from .harness import Servers
from .procinfo import children_cpu_seconds, cpu_seconds
from .stack import System


class CpuMeter:
    """CPU seconds by name (each read by its own function, plus the driver: this
    process), and the machine's use (`machine_cpu.usage`), between `start()` and `stop()`."""

    def __init__(self, readers: Mapping[str, Callable[[], float]]) -> None:
        self._readers = {**readers, "driver": time.process_time}
        self._before: dict[str, float] = {}
        self._machine_before: machine_cpu.CpuTicks | None = None
        self.used: dict[str, float] = {}
        self.machine: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        return {name: read() for name, read in self._readers.items()}

    def start(self) -> None:
        self._machine_before = machine_cpu.read()
        self._before = self._read()

    def stop(self) -> dict[str, float]:
        now = self._read()
        after = machine_cpu.read()
        self.used = {name: round(now[name] - self._before[name], 6) for name in now}
        if self._machine_before is not None and after is not None:
            self.machine = machine_cpu.usage(self._machine_before, after, sum(self.used.values()))
        return self.used


def meter(box: Servers, stack: System) -> CpuMeter:
    """The executors' own processes apart from the processes they ran for the jobs
    (ended ones included), the store, nats-server and Postgres (all its processes)."""
    executors = [e.pid for e in stack.executors]
    return CpuMeter(
        {
            "executor": partial(_sum, cpu_seconds, executors),
            "jobs_processes": partial(_sum, children_cpu_seconds, executors),
            "store": partial(cpu_seconds, stack.store.pid),
            "nats": partial(cpu_seconds, box.nats.pid),
            "postgres": partial(cpu_seconds, box.postgres.pid, tree=True),
        }
    )


def _sum(read: Callable[[int], float], pids: list[int]) -> float:
    return sum(read(pid) for pid in pids)
