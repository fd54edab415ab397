"""The collector settings a service process takes once it has started."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from jetjobs import heap

PROBE = textwrap.dedent(
    """
    import gc, weakref
    from jetjobs import heap

    started = [object() for _ in range(1000)]   # what a service built while starting
    heap.settle()
    print(gc.get_freeze_count() >= len(started), gc.get_threshold()[0])

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a                       # a cycle made while serving jobs
    alive = weakref.ref(a)
    del a, b
    gc.collect()
    print(alive() is None)
    """
)


def test_settle_freezes_what_starting_built_and_still_collects_later_cycles() -> None:
    """Run in a process of its own: freezing the test runner's heap would change every other test."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    frozen_line, cycle_line = done.stdout.splitlines()
    assert frozen_line == f"True {heap.YOUNG_GENERATION}"
    assert cycle_line == "True"
