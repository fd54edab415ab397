"""Stopping tasks that swallow a cancellation, as nats-py's publish does."""

from __future__ import annotations

import asyncio

import pytest

from bus import tasks
from bus.tasks import stop_tasks


async def stubborn(swallow: int, released: asyncio.Event) -> None:
    """Carries on after its first `swallow` cancellations, until released."""
    while not released.is_set():
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            if swallow == 0:
                raise
            swallow -= 1


async def test_a_task_that_swallowed_a_cancellation_is_cancelled_again() -> None:
    task = asyncio.create_task(stubborn(2, asyncio.Event()))
    await asyncio.sleep(0.02)
    async with asyncio.timeout(5):
        await stop_tasks([task])
    assert task.cancelled()


async def test_a_task_gets_its_grace_to_end_by_itself() -> None:
    task = asyncio.create_task(asyncio.sleep(0.05))
    await stop_tasks([task], grace=2)
    assert task.done() and not task.cancelled()


async def test_a_task_that_never_ends_is_given_up_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "PATIENCE", 0.3)
    released = asyncio.Event()
    task = asyncio.create_task(stubborn(10**9, released))
    await asyncio.sleep(0.02)
    async with asyncio.timeout(5):
        await stop_tasks([task])
    assert not task.done()
    released.set()
    await task
