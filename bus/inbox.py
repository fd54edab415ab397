"""JetStream publishes framed once and acknowledged on one inbox of our own.

nats-py's `publish_async` takes a semaphore through a timer, draws a NUID and
encodes the headers for every message: on a hot path (a job's lifecycle events,
an instant's job messages) that costs more than the rest of the publish. Here
a message is framed once (`HPUB` with the reply subject `<inbox>.<n>`, built by
nats-py's own `hpub_cmd`), handed over with others in one write
(`bus.frames`), and JetStream's ack resolves the future kept under its token."""

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
from nats.protocol.command import hpub_cmd

from .frames import write_frames

CHUNK = 1024
"""Frames joined into one write to the client's buffer (it flushes by itself
beyond its pending limit, and after the caller's next await)."""


@dataclass(frozen=True, slots=True)
class Framed:
    """A message in its wire form and its protocol frame, ready to be handed over."""

    subject: str
    payload: bytes
    msg_id: str
    token: str
    """Names the message's ack on the inbox."""
    reply: str
    frame: bytes
    size: int
    """Header and payload bytes: what the server's max_payload limits."""


class Refused(Exception):
    """The client did not take the message (too big, or not connected): nothing was sent."""


Acked = asyncio.Future[PubAck]


class AckInbox:
    """Frames messages with replies on one inbox and resolves their acks."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._tokens = itertools.count()
        self._waiting: dict[str, Acked] = {}
        self._sub: Subscription | None = None
        self._prefix = ""

    async def open(self) -> None:
        """Subscribe to the inbox the acks come back on (once, before the first send)."""
        if self._sub is None:
            inbox = self._nc.new_inbox()
            self._sub = await self._nc.subscribe(f"{inbox}.*", cb=self._on_ack)
            self._prefix = f"{inbox}."

    def frame(self, subject: str, payload: bytes, msg_id: str) -> Framed:
        """The message's frame, deduplicated by `msg_id` (after `open`, for its reply)."""
        token = str(next(self._tokens))
        header = f"NATS/1.0\r\nNats-Msg-Id: {msg_id}\r\n\r\n".encode()
        reply = self._prefix + token
        frame = hpub_cmd(subject, reply, header, payload)
        return Framed(subject, payload, msg_id, token, reply, frame, len(header) + len(payload))

    async def send(self, items: Sequence[Framed]) -> list[Acked | Refused]:
        """Hand the messages over, CHUNK frames per write, without yielding in between
        (the acks of the first would otherwise be read before the last went out).
        Messages framed before the inbox was open are refused: their acks could not come."""
        loop = asyncio.get_running_loop()
        limit = self._nc.max_payload
        handed: list[Acked | Refused] = []
        for start in range(0, len(items), CHUNK):
            outcomes: list[Acked | Refused] = []
            frames: list[bytes] = []
            chunk = items[start : start + CHUNK]
            for item in chunk:
                if not item.reply.startswith(self._prefix) or self._sub is None:
                    outcomes.append(Refused("the ack inbox is not open"))
                    continue
                if item.size > limit:
                    outcomes.append(Refused(f"message of {len(item.payload)} bytes exceeds max_payload"))
                    continue
                future: Acked = loop.create_future()
                self._waiting[item.token] = future
                outcomes.append(future)
                frames.append(item.frame)
            try:
                await write_frames(self._nc, frames)
            except Exception as error:
                for item in chunk:
                    self.forget(item)
                outcomes = [Refused(f"could not hand messages to NATS: {error!r}")] * len(outcomes)
            handed += outcomes
        return handed

    def forget(self, item: Framed) -> None:
        """Stop waiting for this message's ack (it is being sent again another way)."""
        waiting = self._waiting.pop(item.token, None)
        if waiting is not None and not waiting.done():
            waiting.cancel()

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
