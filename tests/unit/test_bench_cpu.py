"""Reading CPU use from /proc: a process's own, its ended children's, the machine's."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench import machine_cpu, procinfo
from bench.cpu_meter import CpuMeter
from bench.machine_cpu import CpuTicks
from bench.procinfo import ProcTimes

STAT = "4242 (py (x) y) S 17 4242 4242 0 -1 4194304 100 200 0 0 31 7 450 95 20 0 3 0 1234 5678 90"


def test_stat_fields_survive_a_command_name_with_spaces_and_parentheses() -> None:
    assert procinfo.parse_stat(STAT) == ProcTimes(ppid=17, own=38, reaped_children=545)


def test_below_a_process_counts_ended_children_once_and_live_ones_with_theirs() -> None:
    root = ProcTimes(ppid=1, own=1000, reaped_children=40)
    live = [ProcTimes(ppid=2, own=5, reaped_children=3), ProcTimes(ppid=3, own=2, reaped_children=0)]
    assert procinfo.below(root, live) == 40 + 5 + 3 + 2
    assert procinfo.below(root, []) == 40


def test_an_ended_childs_cpu_counts_for_its_parent_and_not_as_its_own() -> None:
    me = os.getpid()
    assert procinfo.parse_stat(Path(f"/proc/{me}/stat").read_text()).ppid == os.getppid()
    own, children = procinfo.cpu_seconds(me), procinfo.children_cpu_seconds(me)
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)
    assert procinfo.children_cpu_seconds(me) - children >= 0.25
    assert procinfo.cpu_seconds(me) - own < 0.25


def test_a_process_own_cpu_is_read_to_well_under_a_clock_tick() -> None:
    me = os.getpid()
    before, mine = procinfo.own_cpu_seconds(me), time.process_time()
    end = time.process_time() + 0.003
    while time.process_time() < end:
        pass
    used = procinfo.own_cpu_seconds(me) - before
    assert 0.003 <= used < 1 / procinfo.TICK
    assert abs(used - (time.process_time() - mine)) < 0.001


def test_an_ended_process_has_no_cpu_left_to_read() -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    assert procinfo.own_cpu_seconds(child.pid) == 0.0


PROC_STAT = """cpu  100 5 50 1000 20 0 10 3 7 0
cpu0 50 5 25 500 10 0 5 2 7 0
cpu1 50 0 25 500 10 0 5 1 0 0
intr 12345 0 0
ctxt 999
"""


def test_machine_ticks_leave_guest_time_out_as_it_is_already_in_user() -> None:
    assert machine_cpu.parse_proc_stat(PROC_STAT) == CpuTicks(cores=2, idle=1020, steal=3, total=1188)


def test_machine_usage_gives_busy_cores_and_idle_share_over_the_interval() -> None:
    before = CpuTicks(cores=2, idle=1000, steal=0, total=2000)
    after = CpuTicks(cores=2, idle=1000 + 50, steal=10, total=2000 + 4 * procinfo.TICK)
    busy = 2 * (1 - 50 / (4 * procinfo.TICK))
    assert machine_cpu.usage(before, after, measured=1.0) == {
        "cores": 2,
        "busy_cores": round(busy, 3),
        "other_busy_cores": round(busy - 0.5, 3),
        "idle_pct": round(50 / (4 * procinfo.TICK) * 100, 2),
        "steal_pct": round(10 / (4 * procinfo.TICK) * 100, 2),
        "seconds": 2.0,
    }
    assert machine_cpu.usage(before, before, measured=0.0) == {}


def test_the_meter_reads_each_process_the_driver_and_the_machine() -> None:
    readings = iter([1.0, 1.75])
    meter = CpuMeter({"store": lambda: next(readings)})
    meter.start()
    time.sleep(0.1)
    used = meter.stop()
    assert used["store"] == 0.75 and used["driver"] >= 0
    assert 0 <= meter.machine["busy_cores"] <= meter.machine["cores"]
