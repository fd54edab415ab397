"""Waiting for whichever comes first of a future, a deadline and an event.

A job waits for its process this way once per attempt. `asyncio.wait` with a
timeout and a task around `Event.wait` took about 60 µs of CPU for it; one
future, one timer handle and the event's own waiter take about 20."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any


def _wake(woken: asyncio.Future[None], _: object = None) -> None:
    if not woken.done():
        woken.set_result(None)


def when_set(event: asyncio.Event, callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` once `event`, which is not set yet, is set; returns what stops
    watching it, which must be kept until then. The future `event.wait()` suspends
    on is the event's own waiter: no task is needed to watch it."""
    waiting = event.wait()
    waiter: asyncio.Future[Any] = waiting.send(None)
    waiter.add_done_callback(lambda _: callback())
    return waiting.close


async def first(done: asyncio.Future[Any], when: float, event: asyncio.Event | None = None) -> None:
    """Return once `done` is done, the loop's clock reaches `when` or `event` is set,
    whichever comes first. `done` is never cancelled."""
    if done.done() or (event is not None and event.is_set()):
        return
    loop = asyncio.get_running_loop()
    woken: asyncio.Future[None] = loop.create_future()
    wake = partial(_wake, woken)
    done.add_done_callback(wake)
    timer = loop.call_at(when, wake)
    unwatch = when_set(event, wake) if event is not None else None
    try:
        await woken
    finally:
        done.remove_done_callback(wake)
        timer.cancel()
        if unwatch is not None:
            unwatch()
