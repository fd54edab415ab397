"""Waiting for job processes cheaply.

Python 3.11's default child watcher starts a thread per process just to wait
for it: with a process per job, that thread costs about a third of the
executor's CPU for each spawn. A pidfd watched by the event loop does the same
for less (Python 3.12 and later do this by themselves)."""

from __future__ import annotations

import asyncio
import os
import sys


def pidfd_supported() -> bool:
    """Whether this kernel can hand out process file descriptors."""
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


def use_pidfd_watcher() -> bool:
    """On Python 3.11 with pidfd support, wait for children through the running event
    loop; returns whether it did. Call it from a process's main coroutine (the
    `jetjobs executor` command): the watcher is process-wide and serves this loop only."""
    if sys.version_info >= (3, 12) or not pidfd_supported():
        return False
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.set_child_watcher(watcher)
    return True
