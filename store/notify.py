"""Waiting on a Postgres NOTIFY channel, on a connection of its own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any


class Bell:
    """Rings when a channel is notified. A notification sent while no connection
    listened is missed, so after (re)connecting `wait` returns at once: the caller
    looks for work then, and whenever the bell rings or its timeout passes.

    The connection is not the pool's: a stop that cancels the waiting task must
    not leave a pooled connection unreturned (the pool's close would wait for it)."""

    def __init__(self, connect: Callable[[], Awaitable[Any]], channel: str) -> None:
        self._connect = connect
        self._channel = channel
        self._conn: Any = None
        self._rung = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        """Return when rung, after `timeout` seconds, or at once once (re)connected;
        raises what connecting raises when Postgres is away."""
        if self._conn is None or self._conn.is_closed():
            await self._listen()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._rung.wait(), timeout)
        self._rung.clear()

    async def _listen(self) -> None:
        self.close()
        conn = await self._connect()
        try:
            await conn.add_listener(self._channel, self._ring)
        except BaseException:
            conn.terminate()
            raise
        conn.add_termination_listener(self._ring)
        self._conn = conn
        self._rung.clear()

    def _ring(self, *_: Any) -> None:
        self._rung.set()

    def close(self) -> None:
        """Drop the connection (no await: safe while the task is being cancelled)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()
