"""A tiny HTTP server for Prometheus and probes: `/metrics`, `/healthz`, `/readyz`.

`/healthz` answers 200 while the event loop runs (the process is alive);
`/readyz` answers 200 only when every readiness check passes (NATS connected,
and Postgres reachable for the store), else 503 with the failing checks."""

from __future__ import annotations

import asyncio
import contextlib
import json

import structlog
from prometheus_client import CONTENT_TYPE_LATEST

from bus.telemetry import Telemetry

from ..errors import MetricsServerError

log = structlog.get_logger("jetjobs.metrics")

READ_TIMEOUT = 5.0
TEXT = "text/plain; charset=utf-8"


def _response(status: int, content_type: str, body: bytes) -> bytes:
    reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class MetricsServer:
    """Serves one telemetry (a process's registry and checks) over HTTP."""

    def __init__(self, telemetry: Telemetry, host: str, port: int) -> None:
        self._telemetry = telemetry
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when asked for port 0)."""
        if self._server is None:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """Base URL of the endpoint."""
        return f"http://{self._host}:{self.port}"

    async def start(self) -> None:
        """Listen; a port in use is a clear error."""
        try:
            self._server = await asyncio.start_server(self._serve, self._host, self._port)
        except OSError as error:
            raise MetricsServerError(
                f"cannot serve metrics on {self._host}:{self._port} ({error.strerror}): "
                "set JETJOBS_METRICS_PORT to a free port, or 0 to turn metrics off"
            ) from None
        log.info("metrics.serving", url=self.url)

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            writer.write(await self._answer(request.split(b"\r\n", 1)[0].decode("latin-1")))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, line: str) -> bytes:
        method, _, rest = line.partition(" ")
        path = rest.split(" ", 1)[0].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return _response(405, TEXT, b"only GET\n")
        if path == "/metrics":
            return _response(200, CONTENT_TYPE_LATEST, await self._telemetry.scrape())
        if path == "/healthz":
            return _response(200, TEXT, b"ok\n")
        if path == "/readyz":
            checks = await self._telemetry.ready()
            status = 200 if all(checks.values()) else 503
            return _response(status, "application/json", json.dumps(checks, sort_keys=True).encode() + b"\n")
        return _response(404, TEXT, b"try /metrics, /healthz or /readyz\n")
