"""Capturing a process's output without letting a chatty job exhaust memory."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

CHUNK = 64 * 1024

Sink = Callable[[str, bytes], Awaitable[None]]
"""Receives (stream name, bytes) as the process writes them: live output."""


class Capture:
    """Keeps the first `limit` bytes of a stream and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self._kept = bytearray()

    def feed(self, chunk: bytes) -> None:
        """Take one chunk; what is over the limit is only counted."""
        room = self.limit - len(self._kept)
        if room > 0:
            self._kept += chunk[:room]
        self.total += len(chunk)

    def text(self, limit: int | None = None) -> str:
        """The kept output as text, ending with a marker line when some was dropped."""
        keep = self.limit if limit is None else min(limit, self.limit)
        body = bytes(self._kept[:keep]).decode("utf-8", errors="replace")
        if self.total <= keep:
            return body
        return f"{body}\n[jetjobs: output truncated, kept the first {keep} of {self.total} bytes]\n"


async def readable(fd: int) -> None:
    """Wait until `fd` has data or its end to read, through the running event loop."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(fd, _ready, ready)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


def _ready(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def collect(fd: int, capture: Capture, name: str = "stdout", sink: Sink | None = None) -> None:
    """Read a non-blocking pipe until EOF, as the process writes, so a full pipe
    never blocks it; each chunk also goes to `sink` when there is one. Closes `fd`."""
    try:
        while True:
            try:
                chunk = os.read(fd, CHUNK)
            except BlockingIOError:
                await readable(fd)
                continue
            if not chunk:
                return
            capture.feed(chunk)
            if sink is not None:
                await sink(name, chunk)
    finally:
        os.close(fd)
