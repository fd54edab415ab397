"""Job messages published at an instant: encoded ahead of it, down to the
protocol frame, handed to the connection at it in a few writes, their acks
collected afterwards.

A 1,000-message instant published one `publish` at a time takes tens of
milliseconds on a busy machine. Here the frames are made while preparing and
handed over at the instant (`bus.inbox`). A message whose ack does not come is
sent again on its own with the same `Nats-Msg-Id`, so it is stored at most once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from nats.aio.client import Client
from nats.js.api import PubAck

from contracts import subjects as s
from contracts.flows import FlowStart
from contracts.messages import JobMessage

from .flows import flow_start_address
from .inbox import AckInbox, Framed, Refused
from .publish import Publisher, PublishFailed, encode

ACK_WAIT = 5.0
"""Seconds to wait for a handed-off message's ack before sending it again alone."""

Prepared = Framed
"""A job message (or flow start) in its wire form, ready to be handed off."""

Sent = asyncio.Future[PubAck]
Handed = tuple[Sent | PublishFailed, float]
"""Per message: its ack to come (or why the client did not take it), and when it was written out."""


class Handoff:
    """Hands prepared job messages to the connection and settles their acks."""

    def __init__(self, nc: Client, publisher: Publisher) -> None:
        self._inbox = AckInbox(nc)
        self._publisher = publisher

    async def open(self) -> None:
        """Subscribe to the inbox acks come back on (once, ahead of any instant)."""
        await self._inbox.open()

    async def ensure_pools(self, pools: set[str]) -> None:
        """Create the consumers of pools not seen before (ahead of the instant)."""
        await self.open()
        await self._publisher.ensure_pools(pools)

    def prepare(self, message: JobMessage | FlowStart) -> Prepared:
        """Encode a job message (or a flow template's flow start) down to its frame,
        ahead of its instant (after `open`)."""
        if isinstance(message, FlowStart):
            subject, msg_id = flow_start_address(message)
        else:
            subject = s.dispatch_subject(message.company, message.pool)
            msg_id = s.dispatch_msg_id(message.job_id, message.attempt)
        return self._inbox.frame(subject, encode(message), msg_id)

    async def send(self, items: Sequence[Prepared]) -> list[Handed]:
        """Hand the messages to the connection in a few writes, then let the client's
        flusher write them out; the time returned is taken after that. A message
        too big for the server, or any while disconnected, is refused (PublishFailed)."""
        sent = await self._inbox.send(items)
        await asyncio.sleep(0)
        at = time.time()
        return [(PublishFailed(str(one)) if isinstance(one, Refused) else one, at) for one in sent]

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
            self._inbox.forget(item)
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
