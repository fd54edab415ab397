"""Stopping background tasks that talk to NATS.

nats-py swallows a cancellation that lands inside a publish (its flush step
catches `CancelledError`), and on Python 3.11 one that lands inside a request
as its reply comes (`asyncio.wait_for` returns the reply then), so a task
cancelled once may carry on as if nothing happened, and waiting for it would
hang a service's stop for ever. This cancels again until the task has really
ended."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import structlog

log = structlog.get_logger("jetjobs.bus")

RECANCEL_EVERY = 0.1
"""Seconds between cancellations of a task that has not ended yet."""
PATIENCE = 10.0
"""Seconds of cancelling after which a task still running is given up on (and logged),
so that a stop always ends."""


async def stop_tasks(tasks: Iterable[asyncio.Task[Any]], grace: float = 0.0) -> None:
    """Give the tasks `grace` seconds to end by themselves, then cancel them
    (again and again, while any goes on) and wait until all have ended, or
    `PATIENCE` seconds have passed."""
    every = set(tasks)
    pending = {task for task in every if not task.done()}
    if pending and grace > 0:
        _, pending = await asyncio.wait(pending, timeout=grace)
    loop = asyncio.get_running_loop()
    give_up = loop.time() + PATIENCE
    while pending and loop.time() < give_up:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_EVERY)
    for task in pending:
        log.warning("task.not_stopped", task=task.get_name())
    for task in every - pending:
        if not task.cancelled() and task.exception() is not None:
            log.warning("task.failed", task=task.get_name(), error=repr(task.exception()))
