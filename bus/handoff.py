"""Job messages published at an instant: encoded ahead of it, handed to the
connection at it without a round trip each, their acks collected afterwards.

At the instant each message is one core publish with a reply subject on an
inbox of our own (about half the client-side cost of `publish_async`, which
also draws a random token and takes a semaphore per message); JetStream's ack
arrives on that inbox. A message whose ack does not come is sent again on its
own with the same `Nats-Msg-Id`, so it is stored at most once."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import PubAck
from nats.js.errors import APIError, NoStreamResponseError

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

    def __init__(self, nc: Client, publisher: Publisher) -> None:
        self._nc = nc
        self._publisher = publisher
        self._tokens = itertools.count()
        self._waiting: dict[str, Sent] = {}
        self._inbox: Subscription | None = None
        self._prefix = ""

    async def open(self) -> None:
        """Subscribe to the inbox acks come back on (once, ahead of any instant)."""
        if self._inbox is None:
            inbox = self._nc.new_inbox()
            self._inbox = await self._nc.subscribe(f"{inbox}.*", cb=self._on_ack)
            self._prefix = f"{inbox}."

    async def ensure_pools(self, pools: set[str]) -> None:
        """Create the consumers of pools not seen before (ahead of the instant)."""
        await self.open()
        await self._publisher.ensure_pools(pools)

    async def send(self, item: Prepared) -> Sent:
        """Put one message in the connection's outgoing buffer and return its ack to
        come; raises PublishFailed when the client cannot take it (too big, closed)."""
        if len(item.payload) + len(item.msg_id) + _HEADER_ROOM > self._nc.max_payload:
            raise PublishFailed(f"message of {len(item.payload)} bytes exceeds the server's max_payload")
        token = str(next(self._tokens))
        future: Sent = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        future.add_done_callback(lambda _: self._waiting.pop(token, None))
        try:
            await self._nc.publish(
                item.subject, item.payload, reply=self._prefix + token, headers={"Nats-Msg-Id": item.msg_id}
            )
        except Exception as error:
            future.cancel()
            raise PublishFailed(f"could not hand {item.subject} to NATS: {error!r}") from error
        return future

    async def _on_ack(self, msg: Msg) -> None:
        future = self._waiting.get(msg.subject[len(self._prefix) :])
        if future is None or future.done():
            return
        if not msg.data:
            future.set_exception(NoStreamResponseError())
            return
        try:
            reply = json.loads(msg.data)
        except ValueError:
            future.set_exception(APIError(description="unreadable publish ack"))
            return
        if "error" in reply:
            future.set_exception(APIError.from_error(reply["error"]))
        else:
            future.set_result(PubAck.from_response(reply))

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
