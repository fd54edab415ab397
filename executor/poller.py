"""Watching many file descriptors through one of the event loop's.

Each job process has three descriptors to watch (its pidfd and two output
pipes). A pair of `loop.add_reader` and `remove_reader` costs about 13 µs, an
epoll registration about 2, so they are registered with one epoll per loop,
which the loop watches instead. Where there is no epoll, the loop watches them
itself."""

from __future__ import annotations

import asyncio
import select
from collections.abc import Callable
from typing import Protocol
from weakref import WeakKeyDictionary


class Readers(Protocol):
    """What calls a descriptor's callback whenever it is readable: a `Poller`, or the loop."""

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None: ...

    def remove_reader(self, fd: int) -> object: ...


class Poller:
    """Calls a descriptor's callback, on the loop, whenever it is readable (or at its end)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._epoll = select.epoll()
        self._readers: dict[int, Callable[[], None]] = {}
        loop.add_reader(self._epoll.fileno(), self._ready)

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        """Start watching `fd`, which is not watched yet."""
        self._epoll.register(fd, select.EPOLLIN)
        self._readers[fd] = callback

    def remove_reader(self, fd: int) -> None:
        """Stop watching `fd`, if it is watched; do it before closing it."""
        if self._readers.pop(fd, None) is not None:
            self._epoll.unregister(fd)

    def _ready(self) -> None:
        for fd, _ in self._epoll.poll(0):
            reader = self._readers.get(fd)
            if reader is not None:
                reader()


_pollers: WeakKeyDictionary[asyncio.AbstractEventLoop, Poller] = WeakKeyDictionary()


def poller() -> Readers:
    """The running loop's poller, or the loop itself where there is no epoll."""
    loop = asyncio.get_running_loop()
    if not hasattr(select, "epoll"):
        return loop
    found = _pollers.get(loop)
    if found is None:
        found = _pollers[loop] = Poller(loop)
    return found
