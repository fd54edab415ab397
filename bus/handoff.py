"""Job messages published at an instant: encoded ahead of it, down to the
protocol frame, handed to the connection at it in a few writes, their acks
collected afterwards.

A 1,000-message instant published one `publish` at a time takes tens of
milliseconds on a busy machine. Here the frames (`HPUB` with a reply subject on
an inbox of our own, built by nats-py's own `hpub_cmd`) are made while preparing,
and at the instant a chunk of them goes to the client in one write
(`bus.frames`). JetStream's acks arrive on the inbox. A message whose ack does not come is
sent again on its own with the same `Nats-Msg-Id`, so it is stored at most once."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import PubAck
from nats.js.errors import APIError, NoStreamResponseError
from nats.protocol.command import hpub_cmd

from contracts import subjects as s
from contracts.flows import FlowStart
from contracts.messages import JobMessage

from .flows import flow_start_address
from .frames import write_frames
from .publish import Publisher, PublishFailed, encode

ACK_WAIT = 5.0
"""Seconds to wait for a handed-off message's ack before sending it again alone."""

CHUNK = 1024
"""Frames joined into one write to the client's buffer (it flushes by itself
beyond its pending limit, and after the caller's next await)."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A job message in its wire form, and its protocol frame, ready to be handed off."""

    subject: str
    payload: bytes
    msg_id: str
    token: str
    """Names the message's ack on the hand-off's inbox."""
    frame: bytes
    size: int
    """Header and payload bytes: what the server's max_payload limits."""


Sent = asyncio.Future[PubAck]
Handed = tuple[Sent | PublishFailed, float]
"""Per message: its ack to come (or why the client did not take it), and when it was written out."""


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

    def prepare(self, message: JobMessage | FlowStart) -> Prepared:
        """Encode a job message (or a flow template's flow start) down to its frame,
        ahead of its instant (after `open`)."""
        if isinstance(message, FlowStart):
            subject, msg_id = flow_start_address(message)
        else:
            subject = s.dispatch_subject(message.company, message.pool)
            msg_id = s.dispatch_msg_id(message.job_id, message.attempt)
        payload = encode(message)
        token = str(next(self._tokens))
        header = f"NATS/1.0\r\nNats-Msg-Id: {msg_id}\r\n\r\n".encode()
        frame = hpub_cmd(subject, self._prefix + token, header, payload)
        return Prepared(subject, payload, msg_id, token, frame, len(header) + len(payload))

    async def send(self, items: Sequence[Prepared]) -> list[Handed]:
        """Hand the messages to the connection, CHUNK frames per write, without
        yielding in between (the acks of the first would otherwise be read before
        the last went out), then let the client's flusher write them out; the
        time returned is taken after that. A message too big for the server, or
        any while disconnected, is refused (PublishFailed)."""
        loop = asyncio.get_running_loop()
        limit = self._nc.max_payload
        handed: list[Sent | PublishFailed] = []
        for start in range(0, len(items), CHUNK):
            outcomes: list[Sent | PublishFailed] = []
            frames: list[bytes] = []
            for item in items[start : start + CHUNK]:
                if item.size > limit:
                    outcomes.append(
                        PublishFailed(f"message of {len(item.payload)} bytes exceeds max_payload")
                    )
                    continue
                future: Sent = loop.create_future()
                self._waiting[item.token] = future
                outcomes.append(future)
                frames.append(item.frame)
            try:
                await write_frames(self._nc, frames)
            except Exception as error:
                refused = PublishFailed(f"could not hand messages to NATS: {error!r}")
                for item in items[start : start + CHUNK]:
                    waiting = self._waiting.pop(item.token, None)
                    if waiting is not None:
                        waiting.cancel()
                outcomes = [refused] * len(outcomes)
            handed += outcomes
        await asyncio.sleep(0)
        at = time.time()
        return [(outcome, at) for outcome in handed]

    async def _on_ack(self, msg: Msg) -> None:
        future = self._waiting.pop(msg.subject[len(self._prefix) :], None)
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
            self._waiting.pop(item.token, None)
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
