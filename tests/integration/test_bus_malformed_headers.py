"""A message whose header block is malformed (any client may publish one) does not
stop a jetjobs connection's reader: it is delivered without its headers, and what
follows it is delivered too."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

import pytest
from nats.aio.msg import Msg
from structlog.testing import capture_logs

from bus.connection import connect

pytestmark = pytest.mark.timeout(30)


async def publish_raw(nats_url: str, frames: bytes) -> None:
    """Publish protocol frames from a bare socket, as a client of any language could."""
    where = urlsplit(nats_url)
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    try:
        await reader.readline()  # INFO
        hello = {"verbose": False, "pedantic": False, "headers": True, "protocol": 1}
        writer.write(b"CONNECT " + json.dumps(hello).encode() + b"\r\n" + frames + b"PING\r\n")
        await writer.drain()
        assert (await asyncio.wait_for(reader.readline(), 5)).strip() == b"PONG"
    finally:
        writer.close()


async def test_a_malformed_header_block_is_delivered_without_headers_and_the_reader_goes_on(
    nats_url: str,
) -> None:
    client = await connect(nats_url, "malformed-headers")
    received: list[Msg] = []
    arrived = asyncio.Event()

    async def take(msg: Msg) -> None:
        received.append(msg)
        if msg.subject == "probe.good":
            arrived.set()

    try:
        await client.subscribe("probe.>", cb=take)
        await client.flush()
        with capture_logs() as logs:
            await publish_raw(
                nats_url, b"HPUB probe.bad 8 12\r\nXXXX\r\n\r\nbody\r\nPUB probe.good 2\r\nok\r\n"
            )
            await asyncio.wait_for(arrived.wait(), 5)
        assert [(m.subject, m.data, m.headers) for m in received] == [
            ("probe.bad", b"body", None),
            ("probe.good", b"ok", None),
        ]
        [warning] = [e for e in logs if e["event"] == "nats.malformed_headers"]
        assert warning["headers"] == "XXXX\r\n\r\n"
        assert await client.request("$JS.API.INFO", b"", timeout=5), "the connection still answers"
    finally:
        await client.close()
