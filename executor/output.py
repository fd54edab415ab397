"""Capturing a process's output without letting a chatty job exhaust memory."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

from .poller import poller

CHUNK = 64 * 1024
LINGER = 0.05
"""Longest wait, in seconds, for a trickling stream's output to gather in its pipe
before the next read: many lines make one live-log message where each line was
one (each message costs the executor 100-150 µs of CPU, nats-server more)."""
FILL = 32 * 1024
"""The wait is cut so that, at the rate of the last read, at most this much
gathers: half a pipe, so a job writing fast never blocks on a full one."""

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


class Pipe:
    """One output pipe of a process, read through event-loop callbacks as the process
    writes, so a full pipe never blocks it and a pipe that stays empty costs no task.
    With a sink, a task hands it each chunk before the next is read: in order, and
    never further ahead of a slow sink than one chunk. Takes over `fd`."""

    def __init__(
        self, fd: int, capture: Capture, name: str, sink: Sink | None, ended: Callable[[], None]
    ) -> None:
        self._poller = poller()
        self._fd = fd
        self._capture = capture
        self._name = name
        self._sink = sink
        self._ended = ended
        self._sending: asyncio.Task[None] | None = None
        self._read_at = asyncio.get_running_loop().time()
        self._gap = 0.0
        """Seconds between the last two reads: with the last one's size, the stream's rate."""
        self._gathering: asyncio.Future[None] | None = None
        self._hurried = False
        self.done = False
        """Whether the pipe is closed: at its end, or read no further."""
        os.set_blocking(fd, False)
        self._poller.add_reader(fd, self._readable)

    def _read(self) -> bytes | None:
        """The next chunk, b"" at the end, or None while there is nothing to read."""
        try:
            chunk = os.read(self._fd, CHUNK)
        except BlockingIOError:
            return None
        now = asyncio.get_running_loop().time()
        self._gap, self._read_at = now - self._read_at, now
        self._capture.feed(chunk)
        return chunk

    def _readable(self) -> None:
        chunk = self._read()
        if chunk is None:
            return
        if not chunk:
            self._end()
        elif self._sink is not None:
            self._poller.remove_reader(self._fd)
            self._sending = asyncio.get_running_loop().create_task(self._send(self._sink, chunk))

    async def _send(self, sink: Sink, chunk: bytes) -> None:
        """Hand chunks to `sink` until the pipe is empty, then wait on the loop again."""
        while chunk:
            try:
                await sink(self._name, chunk)
            except Exception:
                break
            if len(chunk) < CHUNK:
                await self._gather(len(chunk))
            next_chunk = self._read()
            if next_chunk is None:
                self._poller.add_reader(self._fd, self._readable)
                return
            chunk = next_chunk
        self._end()

    async def _gather(self, size: int) -> None:
        """Let output gather in the pipe before the next read: up to `LINGER`, less
        as the stream writes faster, not at all once the process is gone."""
        wait = min(LINGER, FILL * self._gap / size)
        if self._hurried or wait <= 0:
            return
        loop = asyncio.get_running_loop()
        self._gathering = loop.create_future()
        timer = loop.call_later(wait, _set, self._gathering)
        try:
            await self._gathering
        finally:
            timer.cancel()
            self._gathering = None

    def hurry(self) -> None:
        """Read on without waiting for output to gather: the process has ended."""
        self._hurried = True
        if self._gathering is not None:
            _set(self._gathering)

    def _end(self) -> None:
        self.done = True
        self._poller.remove_reader(self._fd)
        os.close(self._fd)
        self._ended()

    async def stop(self) -> None:
        """Read no further (another process may hold the pipe open for ever); a chunk
        still being handed to the sink is given up."""
        if self._sending is not None:
            self._sending.cancel()
            await asyncio.gather(self._sending, return_exceptions=True)
        if not self.done:
            self._end()


def _set(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
