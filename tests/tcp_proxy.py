"""A TCP proxy between one client and its server, to cut the network between
them for real: `cut()` drops every connection through it and stops listening
(a connection attempt is refused) until `mend()`, while other clients of the
server stay connected."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from urllib.parse import urlsplit


class TcpProxy:
    """Forwards connections to `127.0.0.1:<port>` to the server of `target_url`."""

    def __init__(self, target_url: str) -> None:
        target = urlsplit(target_url)
        self._scheme = target.scheme
        self._target = (target.hostname or "127.0.0.1", target.port or 4222)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        """Both ends of every connection through the proxy."""
        self._handlers: set[asyncio.Task[None]] = set()
        self._port = 0

    @property
    def url(self) -> str:
        """The URL a client connects to instead of the target's."""
        assert self._port, "the proxy is not started"
        return f"{self._scheme}://127.0.0.1:{self._port}"

    async def __aenter__(self) -> TcpProxy:
        await self.mend()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.cut()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    def cut(self) -> None:
        """Drop every connection now and refuse new ones."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._open):
            writer.transport.abort()

    async def mend(self) -> None:
        """Listen (again, on the same port) for connections."""
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self._port)
            self._port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Forward one connection both ways until either side ends or the proxy drops it."""
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        ends = {writer, upstream_writer}
        self._open |= ends
        pipes = {
            asyncio.create_task(_pipe(reader, upstream_writer)),
            asyncio.create_task(_pipe(upstream_reader, writer)),
        }
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for end in ends:
                end.transport.abort()
            self._open -= ends
            for pipe in pipes:
                pipe.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)
            self._handlers.discard(handler)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
