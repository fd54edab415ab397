"""Pulling typed messages from a durable consumer and settling each one."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog
from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError, ConnectionReconnectingError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.errors import APIError
from pydantic import BaseModel, ValidationError

from contracts.errors import describe

log = structlog.get_logger("jetjobs.bus")

M = TypeVar("M", bound=BaseModel)

TRANSIENT_FETCH = (APIError, NoRespondersError, ConnectionClosedError, ConnectionReconnectingError)
"""Fetch errors during a leader change or reconnect: wait briefly and pull again."""


@dataclass(frozen=True)
class Ack:
    """Done: the message leaves this consumer."""


@dataclass(frozen=True)
class Nak:
    """Not now: deliver again after `delay` seconds."""

    delay: float = 0.0


@dataclass(frozen=True)
class Term:
    """Never: stop delivering it, saying why."""

    reason: str


Action = Ack | Nak | Term


@dataclass(frozen=True)
class Delivery(Generic[M]):
    """A decoded message with the handle to settle it."""

    payload: M
    msg: Msg

    @property
    def delivered(self) -> int:
        """How many times JetStream has delivered this message (1 on first)."""
        return int(self.msg.metadata.num_delivered)

    async def progress(self) -> None:
        """Reset the ack deadline: the job is still being worked on."""
        await self.msg.in_progress()


@dataclass(frozen=True)
class Invalid:
    """A message that is not a valid instance of the expected model."""

    msg: Msg
    reason: str


def decode(model: type[M], msg: Msg) -> Delivery[M] | Invalid:
    """Validate a message against its contract, never raising."""
    try:
        return Delivery(model.model_validate_json(msg.data), msg)
    except ValidationError as error:
        if any(e["type"] == "json_invalid" for e in error.errors()):
            return Invalid(msg, "not valid JSON")
        return Invalid(msg, f"invalid {model.__name__}: {describe(error)}")
    except (UnicodeDecodeError, ValueError) as error:
        return Invalid(msg, f"undecodable payload: {error}")


async def settle(msg: Msg, action: Action) -> None:
    """Apply an action; `term` carries its reason, which nats-py's `term()` cannot."""
    match action:
        case Ack():
            await msg.ack()
        case Nak(delay):
            await msg.nak(delay=delay if delay > 0 else None)
        case Term(reason):
            if msg.reply:
                await msg._client.publish(msg.reply, f"+TERM {reason[:200]}".encode())


class PullConsumer:
    """A bound durable pull consumer that treats every transient error as 'try again'."""

    def __init__(self, js: JetStreamContext, stream: str, durable: str) -> None:
        self._js = js
        self._stream = stream
        self._durable = durable
        self._sub: JetStreamContext.PullSubscription | None = None

    async def fetch(self, batch: int, timeout: float = 1.0) -> list[Msg]:
        """Up to `batch` messages, or none after `timeout` seconds."""
        if batch <= 0:
            return []
        try:
            if self._sub is None:
                self._sub = await self._js.pull_subscribe_bind(self._durable, self._stream)
            return await self._sub.fetch(batch, timeout=timeout)
        except (NatsTimeout, TimeoutError):
            return []
        except TRANSIENT_FETCH as error:
            log.warning("bus.fetch_retry", consumer=self._durable, error=repr(error))
            await asyncio.sleep(0.5)
            return []

    async def close(self) -> None:
        """Stop pulling (the durable consumer stays on the server)."""
        if self._sub is not None:
            with contextlib.suppress(ConnectionClosedError, ValueError):
                await self._sub.unsubscribe()
            self._sub = None
