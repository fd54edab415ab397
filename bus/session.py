"""One connected, provisioned bus: what every service starts with."""

from __future__ import annotations

from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.js import JetStreamContext

from .connection import ConnectionStats, connect
from .infra import Layout, provision
from .publish import Publisher


@dataclass
class Bus:
    """A NATS connection with its JetStream context and publisher."""

    nc: Client
    js: JetStreamContext
    layout: Layout
    publisher: Publisher
    stats: ConnectionStats = field(default_factory=ConnectionStats)

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
                await provision(js, layout, store=store)
        except BaseException:
            await nc.close()
            raise
        return cls(nc, js, layout, Publisher(nc, js, layout), stats)

    @classmethod
    async def attach(cls, url: str, name: str, layout: Layout | None = None) -> Bus:
        """Connect without provisioning, giving up quickly: for one-shot commands."""
        nc = await connect(url, name, persistent=False)
        layout = layout or Layout()
        js = nc.jetstream(timeout=10)
        return cls(nc, js, layout, Publisher(nc, js, layout))

    async def close(self) -> None:
        """Flush what is buffered and disconnect."""
        if not self.nc.is_closed:
            await self.nc.drain()
