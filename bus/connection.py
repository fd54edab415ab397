"""Connecting to NATS the way long-running services and one-shot commands need."""

from __future__ import annotations

import structlog
from nats.aio.client import Client
from nats.errors import NoServersError

log = structlog.get_logger("jetjobs.bus")


class BusUnavailable(Exception):
    """NATS could not be reached; the message names the URL and how to fix it."""


async def _on_error(error: Exception) -> None:
    log.warning("nats.error", error=str(error) or type(error).__name__)


async def _on_disconnect() -> None:
    log.warning("nats.disconnected")


async def _on_reconnect() -> None:
    log.info("nats.reconnected")


async def connect(url: str, name: str, *, persistent: bool = True) -> Client:
    """A connection that, for services (`persistent`), never gives up reconnecting;
    a command gives up quickly with a clear error instead."""
    client = Client()
    try:
        await client.connect(
            servers=[url],
            name=name,
            max_reconnect_attempts=-1 if persistent else 2,
            reconnect_time_wait=1,
            connect_timeout=2,
            allow_reconnect=True,
            error_cb=_on_error,
            disconnected_cb=_on_disconnect,
            reconnected_cb=_on_reconnect,
            pending_size=64 * 1024 * 1024,
        )
    except (NoServersError, OSError, TimeoutError) as error:
        raise BusUnavailable(
            f"cannot reach NATS at {url} ({error or type(error).__name__}): "
            "start it (`jetjobs up`) or set JETJOBS_NATS_URL"
        ) from None
    return client
