"""JetStream publishes framed once and acknowledged on one inbox of our own.

nats-py's `publish_async` takes a semaphore through a timer, draws a NUID and
encodes the headers for every message: on a hot path (a job's lifecycle events,
an instant's job messages) that costs more than the rest of the publish. Here
a message is framed once (`HPUB` with the reply subject `<inbox>.<n>`, built by
nats-py's own `hpub_cmd`), handed over with others in one write
(`bus.frames`), and JetStream's ack resolves the future kept under its token."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any, NamedTuple

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import PubAck
from nats.js.errors import APIError, NoStreamResponseError
from nats.protocol.command import hpub_cmd
from pydantic import TypeAdapter

from .frames import write_frames

CHUNK = 1024
"""Frames joined into one write to the client's buffer (it flushes by itself
beyond its pending limit, and after the caller's next await)."""

ACK_WAIT = 5.0
"""Seconds after which an ack that has not come is given up on: it was lost (in a
reconnect, say), and the message must be published again."""


class Framed(NamedTuple):
    """A message in its wire form and its protocol frame, ready to be handed over
    (a tuple: a few are made for every job, and a frozen dataclass costs three times as much)."""

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
    """Frames messages with replies on one inbox and resolves their acks.

    Every ack's future ends: with the ack, or, when it has not come between
    `patience` and twice that after the send, with a TimeoutError. One timer for
    the whole inbox looks at the acks still awaited, so a waiter needs none."""

    def __init__(self, nc: Client, patience: float = ACK_WAIT) -> None:
        self._nc = nc
        self._tokens = itertools.count()
        self._waiting: dict[str, Acked] = {}
        self._sub: Subscription | None = None
        self._prefix = ""
        self._patience = patience
        self._overdue: list[str] = []
        """Tokens awaited at the last look: those still awaited at the next have waited too long."""
        self._look: asyncio.TimerHandle | None = None

    @property
    def is_open(self) -> bool:
        """Whether acks can come back (`open` has subscribed)."""
        return self._sub is not None

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
        handed: list[Acked | Refused] = []
        for start in range(0, len(items), CHUNK):
            chunk = items[start : start + CHUNK]
            outcomes = [self._admit(item, loop) for item in chunk]
            frames = [
                item.frame
                for item, outcome in zip(chunk, outcomes, strict=True)
                if not isinstance(outcome, Refused)
            ]
            try:
                await write_frames(self._nc, frames)
            except Exception as error:
                for item in chunk:
                    self.forget(item)
                outcomes = [Refused(f"could not hand messages to NATS: {error!r}")] * len(outcomes)
            handed += outcomes
        return handed

    async def send_one(self, item: Framed) -> Acked | Refused:
        """`send` of a single message (a job's lifecycle events go one at a time)."""
        outcome = self._admit(item, asyncio.get_running_loop())
        if isinstance(outcome, Refused):
            return outcome
        try:
            await write_frames(self._nc, (item.frame,))
        except Exception as error:
            self.forget(item)
            return Refused(f"could not hand messages to NATS: {error!r}")
        return outcome

    def _admit(self, item: Framed, loop: asyncio.AbstractEventLoop) -> Acked | Refused:
        """The future of the message's ack, or why it cannot be sent."""
        if self._sub is None or not item.reply.startswith(self._prefix):
            return Refused("the ack inbox is not open")
        if item.size > self._nc.max_payload:
            return Refused(f"message of {len(item.payload)} bytes exceeds max_payload")
        future: Acked = loop.create_future()
        self._waiting[item.token] = future
        if self._look is None:
            self._look = loop.call_later(self._patience, self._give_up, loop)
        return future

    def _give_up(self, loop: asyncio.AbstractEventLoop) -> None:
        """Fail the acks awaited at the last look already, and look again later if any are awaited."""
        self._look = None
        for token in self._overdue:
            future = self._waiting.pop(token, None)
            if future is not None and not future.done():
                future.set_exception(TimeoutError(f"no publish ack within {self._patience:g} s"))
                future.exception()  # whoever awaited it may be gone (a cancelled job): no "never retrieved"
        self._overdue = list(self._waiting)
        if self._waiting:
            self._look = loop.call_later(self._patience, self._give_up, loop)

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
            reply = ACK_REPLY.validate_json(msg.data)
        except ValueError:
            future.set_exception(APIError(description="unreadable publish ack"))
            return
        if "error" not in reply:
            future.set_result(pub_ack(reply))
            return
        try:
            APIError.from_error(reply["error"])  # raises the error's own kind, never returns
        except APIError as error:
            future.set_exception(error)


ACK_REPLY = TypeAdapter(dict[str, Any])
"""Reads a JetStream reply, a JSON object, in a third of the time `json.loads` takes."""
ACK_FIELDS = frozenset(field.name for field in dataclasses.fields(PubAck))


def pub_ack(reply: dict[str, Any]) -> PubAck:
    """`PubAck.from_response`, without looking the dataclass's fields up again for every ack."""
    if "batch" in reply or "count" in reply:
        return PubAck.from_response(reply)
    return PubAck(**{name: value for name, value in reply.items() if name in ACK_FIELDS})
