"""Waiting on a Postgres NOTIFY channel, on one pooled connection held for it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


class Bell:
    """Rings when a channel is notified. A notification sent while no connection
    listened is missed, so after (re)connecting `wait` returns at once: the caller
    looks for work then, and whenever the bell rings or its timeout passes."""

    def __init__(self, pool: Any, channel: str) -> None:
        self._pool = pool
        self._channel = channel
        self._conn: Any = None
        self._rung = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        """Return when rung, after `timeout` seconds, or at once once (re)connected;
        raises what the pool raises when Postgres is away."""
        if self._conn is None or self._conn.is_closed():
            await self._listen()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._rung.wait(), timeout)
        self._rung.clear()

    async def _listen(self) -> None:
        await self.close()
        conn = await self._pool.acquire()
        try:
            await conn.add_listener(self._channel, self._ring)
        except BaseException:
            await self._pool.release(conn)
            raise
        conn.add_termination_listener(self._ring)
        self._conn = conn
        self._rung.clear()

    def _ring(self, *_: Any) -> None:
        self._rung.set()

    async def close(self) -> None:
        """Give the connection back to the pool (which stops its listening)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await self._pool.release(conn)
