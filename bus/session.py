"""One connected, provisioned bus: what every service starts with."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.errors import ServiceUnavailableError

from .connection import ConnectionStats, answering, connect
from .heal import Healer, register
from .infra import Layout, provision
from .publish import Publisher

log = structlog.get_logger("jetjobs.bus")

FORMING = (NatsTimeout, ServiceUnavailableError)
"""What JetStream answers while a cluster is still electing its leaders."""

FORMING_PATIENCE = 60.0
"""Seconds a starting service waits for JetStream to be ready before it gives up."""

CLOSE_PATIENCE = 2.0
"""Seconds `Bus.close` waits for the server to answer before it closes without draining."""


async def _provision_when_ready(
    js: JetStreamContext, layout: Layout, stats: ConnectionStats, *, store: bool
) -> None:
    """Provision, trying again while JetStream is forming: services started beside a
    new cluster (compose, systemd) come up once it is ready instead of exiting. A
    timeout after the server denied a request is a missing permission: no retry."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + FORMING_PATIENCE
    pause = 0.5
    denied = stats.denied
    while True:
        try:
            await provision(js, layout, store=store)
            return
        except FORMING as error:
            if stats.denied > denied or loop.time() + pause > give_up:
                raise
            log.warning("bus.jetstream_not_ready", error=str(error) or type(error).__name__, retry_in=pause)
        await asyncio.sleep(pause)
        pause = min(pause * 2, 5.0)


@dataclass
class Bus:
    """A NATS connection with its JetStream context and publisher, and the healer
    that makes again what it finds gone (passive unless the bus provisions)."""

    nc: Client
    js: JetStreamContext
    layout: Layout
    publisher: Publisher
    healer: Healer
    stats: ConnectionStats = field(default_factory=ConnectionStats)

    @classmethod
    def _made(
        cls, nc: Client, js: JetStreamContext, layout: Layout, healer: Healer, stats: ConnectionStats
    ) -> Bus:
        register(nc, js, healer)
        return cls(nc, js, layout, Publisher(nc, js, layout, healer), healer, stats)

    @classmethod
    async def open(
        cls,
        url: str,
        name: str,
        layout: Layout | None = None,
        *,
        store: bool = False,
        persistent: bool = True,
        provisioning: bool = True,
        inbox_prefix: str = "_INBOX",
    ) -> Bus:
        """Connect and make sure the streams and buckets exist (the store also
        declares its own consumers); without `provisioning`, for a NATS user that
        may only use what an operator created, just connect."""
        stats = ConnectionStats()
        nc = await connect(url, name, persistent=persistent, stats=stats, inbox_prefix=inbox_prefix)
        js = nc.jetstream(timeout=10)
        layout = layout or Layout()
        try:
            if provisioning:
                await _provision_when_ready(js, layout, stats, store=store)
        except BaseException:
            await nc.close()
            raise
        healer = Healer(js, layout, store=store, active=provisioning)
        stats.on_reconnect.append(healer.check_soon)
        return cls._made(nc, js, layout, healer, stats)

    @classmethod
    async def attach(cls, url: str, name: str, layout: Layout | None = None) -> Bus:
        """Connect without provisioning, giving up quickly: for one-shot commands."""
        nc = await connect(url, name, persistent=False)
        layout = layout or Layout()
        js = nc.jetstream(timeout=10)
        return cls._made(nc, js, layout, Healer(js, layout, active=False), ConnectionStats())

    @property
    def server_version(self) -> str:
        """The version of the nats-server connected to, as it states it (`2.15.1`)."""
        version = self.nc.connected_server_version
        return f"{version.major}.{version.minor}.{version.patch}"

    async def close(self) -> None:
        """Flush what is buffered and disconnect. A connection that cannot drain (its
        server is down or does not answer) is closed at once, dropping what it still
        buffered, so that stopping never hangs or fails on a dead server."""
        if self.nc.is_closed:
            return
        self.healer.close()
        if await self._answering():
            try:
                await self.nc.drain()
                return
            except (NatsError, TimeoutError) as error:
                reason = str(error) or type(error).__name__
        else:
            reason = "NATS does not answer"
        log.warning("nats.closed_without_drain", connection=self.nc.options.get("name"), reason=reason)
        # nats-py's close first writes what is buffered to the socket, and stops half way,
        # its subscriptions still running, when that socket is gone: drop it here instead.
        self.nc._pending = []
        self.nc._pending_data_size = 0
        await self.nc.close()

    async def _answering(self) -> bool:
        ping = asyncio.ensure_future(answering(self.nc))
        done, _ = await asyncio.wait({ping}, timeout=CLOSE_PATIENCE)
        return ping in done and ping.result()
