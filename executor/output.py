"""Capturing a process's output without letting a chatty job exhaust memory."""

from __future__ import annotations

import asyncio
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


async def collect(
    stream: asyncio.StreamReader, capture: Capture, name: str = "stdout", sink: Sink | None = None
) -> None:
    """Read until EOF, as the process writes, so a full pipe never blocks it;
    each chunk also goes to `sink` when there is one."""
    while chunk := await stream.read(CHUNK):
        capture.feed(chunk)
        if sink is not None:
            await sink(name, chunk)
