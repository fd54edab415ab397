"""Connecting to NATS the way long-running services and one-shot commands need."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from nats.aio.client import Client
from nats.errors import Error as ClientError
from nats.errors import NoServersError

from .client import GuardedClient

log = structlog.get_logger("jetjobs.bus")

NATS_ERRORS: tuple[type[Exception], ...] = (ClientError, TimeoutError)
"""What a request to NATS raises when the server is away, slow or refuses: what a
caller outside `bus` catches to answer "try again"."""

OLDEST_NATS = (2, 11, 0)
"""The oldest nats-server jetjobs runs on. Streams allow per-message TTLs
(2.11); on 2.9, redelivery, dead letters and fetches on an empty stream
misbehave without any error."""

SERVICE_START_ATTEMPTS = 30
"""About 30 s of trying at start before a service gives up with a clear error."""

PING_INTERVAL = 10
MAX_OUTSTANDING_PINGS = 2
"""A connection pings its server every PING_INTERVAL seconds and, after
MAX_OUTSTANDING_PINGS go unanswered, gives the server up and reconnects: a server
that hung or sits across a partition is noticed within 30 s (nats-py's defaults,
120 s and 2, took up to 6 min, while every request and publish waited on it)."""

ROUND_TRIP_PATIENCE = 60
"""Seconds `answering` leaves a ping out. nats-py's reader dies on the answer to a
ping its caller stopped waiting for, so a ping is never given up while its
connection lives: this outlasts the 30 s after which the connection itself gives
the server up (and with it the pings it sent)."""


def redacted(url: str) -> str:
    """`url` (or comma-separated URLs) fit for logs: passwords and tokens hidden."""
    return ",".join(_redacted_one(part) for part in url.split(","))


def _redacted_one(url: str) -> str:
    if re.search(r"//[^@/]*:[^@/]*@", url):  # user:password@
        return re.sub(r"//([^:@/]*):[^@/]*@", r"//\1:***@", url)
    return re.sub(r"//[^@/]+@", "//***@", url)  # a token alone


class BusUnavailable(Exception):
    """NATS could not be reached; the message names the URL and how to fix it."""


class UnsupportedNats(Exception):
    """The server is older than `OLDEST_NATS`; the message says what to do."""


def nats_version(text: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of the first version in `text` (`2.9.10`, `nats-server: v2.15.1`)."""
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def check_server(version: str, url: str) -> None:
    """Refuse a nats-server older than `OLDEST_NATS` (a version it does not state
    in the usual form is let through: nothing can be said about it)."""
    found = nats_version(version)
    if found is not None and found < OLDEST_NATS:
        wanted = ".".join(map(str, OLDEST_NATS))
        raise UnsupportedNats(
            f"NATS at {redacted(url)} is nats-server {version}, and jetjobs needs {wanted} or newer "
            "with JetStream: upgrade it, or set JETJOBS_NATS_URL to a newer one (`jetjobs up` runs one)"
        )


@dataclass
class ConnectionStats:
    """Disconnects and reconnects of one connection, for metrics."""

    client: Client | None = None
    disconnects: int = 0
    reconnects: int = 0
    on_reconnect: list[Callable[[], None]] = field(default_factory=list)
    """Called after each reconnect: e.g. to restart a KV watch at once."""
    denied: int = 0
    """Permissions violations the server reported (a request it denied then times out)."""

    @property
    def connected(self) -> bool:
        """Whether the connection is up right now."""
        return self.client is not None and self.client.is_connected


async def answering(client: Client | None) -> bool:
    """Whether the server answers a ping right now: a connection stays `connected` for
    as long as it takes to notice that its server hung. Bound the wait from outside
    without cancelling (see `ROUND_TRIP_PATIENCE`); losing the connection ends it at once."""
    if client is None or not client.is_connected:
        return False
    connection = client.stats["reconnects"]
    pong = asyncio.ensure_future(client.flush(timeout=ROUND_TRIP_PATIENCE))
    pong.add_done_callback(_settle)
    while not pong.done():
        await asyncio.wait({pong}, timeout=0.5)
        if not client.is_connected or client.stats["reconnects"] != connection:
            return False  # a ping sent on a connection since replaced is never answered
    return not pong.cancelled() and pong.exception() is None


def _settle(task: asyncio.Future[None]) -> None:
    """Retrieve the outcome of a ping nobody waits for any more."""
    with contextlib.suppress(asyncio.CancelledError):
        task.exception()


class _Reporter:
    """Logs connection trouble, but not the disconnect of our own close, and
    nothing at all for a command (its one error line says it all)."""

    def __init__(self, client: Client, url: str, *, quiet: bool, stats: ConnectionStats) -> None:
        self._client, self._url, self._quiet = client, url, quiet
        self._stats = stats

    async def error(self, error: Exception) -> None:
        if "permissions violation" in str(error).lower():
            self._stats.denied += 1
        if not self._quiet:
            log.warning("nats.error", url=self._url, error=str(error) or type(error).__name__)

    async def disconnected(self) -> None:
        if not (self._client.is_closed or self._client.is_draining):
            self._stats.disconnects += 1
        if not (self._quiet or self._client.is_closed or self._client.is_draining):
            log.warning("nats.disconnected", url=self._url)

    async def reconnected(self) -> None:
        self._stats.reconnects += 1
        if not self._quiet:
            log.info("nats.reconnected", url=self._url)
        for hook in list(self._stats.on_reconnect):
            hook()


async def connect(
    url: str,
    name: str,
    *,
    persistent: bool = True,
    stats: ConnectionStats | None = None,
    inbox_prefix: str = "_INBOX",
) -> Client:
    """A connection that, for services (`persistent`), never gives up once it is
    up; at start a service tries for a while, a command gives up at once."""
    client = GuardedClient()
    stats = stats if stats is not None else ConnectionStats()
    stats.client = client
    reporter = _Reporter(client, redacted(url), quiet=not persistent, stats=stats)
    try:
        await client.connect(
            servers=[part.strip() for part in url.split(",")],
            name=name,
            max_reconnect_attempts=SERVICE_START_ATTEMPTS if persistent else 1,
            reconnect_time_wait=1,
            connect_timeout=2,
            ping_interval=PING_INTERVAL,
            max_outstanding_pings=MAX_OUTSTANDING_PINGS,
            allow_reconnect=True,
            pending_size=64 * 1024 * 1024,
            error_cb=reporter.error,
            disconnected_cb=reporter.disconnected,
            reconnected_cb=reporter.reconnected,
            inbox_prefix=inbox_prefix,
        )
    except (NoServersError, OSError, TimeoutError) as error:
        await client.close()
        raise BusUnavailable(
            f"cannot reach NATS at {redacted(url)} ({error or type(error).__name__}): "
            "start it (`jetjobs up`) or set JETJOBS_NATS_URL"
        ) from None
    try:
        check_server(str(client._server_info.get("version", "")), url)
    except UnsupportedNats:
        await client.close()
        raise
    if persistent:
        client.options["max_reconnect_attempts"] = -1
    return client
