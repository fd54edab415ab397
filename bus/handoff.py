"""Job messages published at an instant: encoded ahead of it, handed to the
connection at it without a round trip each, their acks collected afterwards.
A message whose ack does not come is sent again on its own with the same
`Nats-Msg-Id`, so it is stored at most once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck

from contracts import subjects as s
from contracts.messages import JobMessage

from .publish import Publisher, PublishFailed, encode

ACK_WAIT = 5.0
"""Seconds to wait for a handed-off message's ack before sending it again alone."""

_HEADER_ROOM = 64
"""Bytes the `Nats-Msg-Id` header line adds besides the id itself."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A job message in its wire form, ready to be handed off."""

    subject: str
    payload: bytes
    msg_id: str


def prepare(message: JobMessage) -> Prepared:
    """Encode a job message (the slow part of publishing), ahead of its instant."""
    return Prepared(
        s.dispatch_subject(message.company, message.pool),
        encode(message),
        s.dispatch_msg_id(message.job_id, message.attempt),
    )


Sent = asyncio.Future[PubAck]


class Handoff:
    """Hands prepared job messages to the connection and settles their acks."""

    def __init__(self, nc: Client, js: JetStreamContext, publisher: Publisher) -> None:
        self._nc = nc
        self._js = js
        self._publisher = publisher

    async def ensure_pools(self, pools: set[str]) -> None:
        """Create the consumers of pools not seen before (ahead of the instant)."""
        await self._publisher.ensure_pools(pools)

    async def send(self, item: Prepared) -> Sent:
        """Put one message in the connection's outgoing buffer and return its ack to
        come; raises PublishFailed when the client cannot take it (too big, closed)."""
        if len(item.payload) + len(item.msg_id) + _HEADER_ROOM > self._nc.max_payload:
            raise PublishFailed(f"message of {len(item.payload)} bytes exceeds the server's max_payload")
        try:
            return await self._js.publish_async(
                item.subject, item.payload, headers={"Nats-Msg-Id": item.msg_id}
            )
        except Exception as error:
            raise PublishFailed(f"could not hand {item.subject} to NATS: {error!r}") from error

    async def settle(self, sent: Sequence[tuple[Prepared, Sent]]) -> list[bool | Exception]:
        """Per message handed off, whether it was a duplicate, or why JetStream did
        not store it. A message without an ack within ACK_WAIT is sent again alone;
        once NATS proves unreachable (PublishFailed) the rest fail with it."""
        if sent:
            await asyncio.wait([future for _, future in sent], timeout=ACK_WAIT)
        results: list[bool | Exception] = []
        unreachable: PublishFailed | None = None
        for item, future in sent:
            if future.done() and not future.cancelled() and future.exception() is None:
                results.append(future.result().duplicate is True)
                continue
            future.cancel()
            if unreachable is not None:
                results.append(unreachable)
                continue
            try:
                ack = await self._publisher.publish(item.subject, item.payload, item.msg_id)
            except PublishFailed as error:
                unreachable = error
                results.append(error)
            except Exception as error:
                results.append(error)
            else:
                results.append(ack.duplicate is True)
        return results
