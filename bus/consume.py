"""Pulling typed messages from a durable consumer and settling each one."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import ConnectionClosedError, ConnectionReconnectingError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import DEFAULT_PREFIX, Header, StatusCode
from nats.js.errors import APIError, ServiceUnavailableError
from pydantic import BaseModel, ValidationError

from contracts.errors import describe

from .heal import consumer_gone, healer_of, status_gist
from .reply import delivery_count

log = structlog.get_logger("jetjobs.bus")

M = TypeVar("M", bound=BaseModel)

TRANSIENT_FETCH = (APIError, NoRespondersError, ConnectionClosedError, ConnectionReconnectingError)
"""Fetch errors during a leader change or reconnect: wait briefly and pull again."""

NOBODY_SERVES = (ServiceUnavailableError, NoRespondersError)
"""Fetch errors that say nobody serves the consumer: it (or its stream) may be gone."""


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

    @functools.cached_property
    def delivered(self) -> int:
        """How many times JetStream has delivered this message (1 on first)."""
        return delivery_count(self.msg.reply)

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


def misaddressed(msg: Msg, expected: str) -> Invalid | None:
    """Why a message on another subject than `expected`, the one its payload names, is
    refused; None when it is on its own. NATS permissions confine a tenant to its
    subjects, not what its payloads claim, so a payload may not name another company,
    pool or job."""
    if msg.subject == expected:
        return None
    return Invalid(msg, f"came on {msg.subject}: publish it to {expected}, the subject its payload names")


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
                await self._declare()
                self._sub = await self._js.pull_subscribe_bind(self._durable, self._stream)
            return await self._sub.fetch(batch, timeout=timeout)
        except (NatsTimeout, TimeoutError):
            return []
        except TRANSIENT_FETCH as error:
            healer = healer_of(self._js)
            if isinstance(error, NOBODY_SERVES) and healer is not None:
                await healer.restore(f"nobody served a pull from consumer {self._durable}")
            else:
                log.warning(
                    "bus.fetch_retry", consumer=self._durable, error=str(error) or type(error).__name__
                )
            await asyncio.sleep(0.5)
            return []

    async def _declare(self) -> None:
        """Have the connection's healer make this consumer again, as the server has it
        now, whenever it goes missing."""
        healer = healer_of(self._js)
        if healer is not None:
            info = await self._js.consumer_info(self._stream, self._durable)
            healer.declare(self._stream, info.config)

    async def close(self) -> None:
        """Stop pulling (the durable consumer stays on the server)."""
        if self._sub is not None:
            with contextlib.suppress(ConnectionClosedError, ValueError):
                await self._sub.unsubscribe()
            self._sub = None


PENDING_MESSAGES = "Nats-Pending-Messages"
"""Header of a pull request's closing status: how many of its messages never came."""

SILENCE = 2.0
"""Seconds past its expiry after which a request counts as ended even unheard of."""


class PullFeed(Generic[M]):
    """Keeps pull requests outstanding for exactly as many messages as the client
    can take, so a message is delivered the moment it is stored instead of at
    the next fetch, with no task or timer per message.

    `want(n)` tops the outstanding requests up to `n` messages; each message
    goes to `deliver`, decoded as a `model`, as it arrives. A request the server ends (expired,
    leadership change) says how many of its messages never came, and they are
    requested again at the next `want`. A request that ends unheard of (lost
    in a reconnect) stops counting once its expiry has passed. When the server says
    nobody serves the consumer (deleted, or its stream gone), nothing asked counts
    any more, and `gone` is told why."""

    def __init__(
        self,
        nc: Client,
        stream: str,
        durable: str,
        model: type[M],
        deliver: Callable[[Delivery[M] | Invalid], None],
        *,
        expires: float = 5.0,
        ended: Callable[[], None] | None = None,
        gone: Callable[[str], None] | None = None,
    ) -> None:
        self._nc = nc
        self._next = f"{DEFAULT_PREFIX}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._durable = durable
        self._model = model
        self._deliver = deliver
        self._ended = ended
        self._gone = gone
        self._expires = expires
        self._inbox = ""
        self._sub: Subscription | None = None
        self._pending = 0
        self._requests: deque[tuple[float, int]] = deque()
        """(loop time by which it has surely ended, batch) of each request, oldest first."""
        self._live = 0
        """The sum of the batches in `_requests`: more than this cannot be pending."""

    @property
    def pending(self) -> int:
        """Messages requested and not yet delivered."""
        return self._pending

    async def want(self, room: int, least: int = 1) -> None:
        """Make sure `room` messages are requested: one request for the difference,
        when it is at least `least` (or nothing at all is requested)."""
        now = asyncio.get_running_loop().time()
        self._expire(now)
        missing = room - self._pending
        if missing <= 0 or (missing < least and self._pending):
            return
        if self._sub is None:
            self._inbox = self._nc.new_inbox()
            self._sub = await self._nc.subscribe(self._inbox, cb=self._received)
        request = {"batch": missing, "expires": int(self._expires * 1e9)}
        try:
            await self._nc.publish(self._next, json.dumps(request).encode(), reply=self._inbox)
        except (ConnectionClosedError, ConnectionReconnectingError) as error:
            log.warning("bus.pull_retry", consumer=self._durable, error=repr(error))
            return
        self._pending += missing
        self._requests.append((now + self._expires + SILENCE, missing))
        self._live += missing

    def _expire(self, now: float) -> None:
        while self._requests and self._requests[0][0] < now:
            self._live -= self._requests.popleft()[1]
        self._pending = min(self._pending, self._live)

    def forget(self) -> None:
        """Count no request as outstanding any more (after a reconnect)."""
        self._pending = self._live = 0
        self._requests.clear()

    async def _received(self, msg: Msg) -> None:
        headers = msg.headers
        status = headers.get(Header.STATUS) if headers else None
        if not status:
            self._pending = max(self._pending - 1, 0)
            self._deliver(decode(self._model, msg))
            return
        assert headers is not None
        if status == StatusCode.CONTROL_MESSAGE:
            return
        unfilled = headers.get(PENDING_MESSAGES, "")
        if unfilled.isdigit():
            self._pending = max(self._pending - int(unfilled), 0)
        reason = headers.get(Header.DESCRIPTION)
        if consumer_gone(status, reason):
            self.forget()  # nothing asked of a consumer nobody serves comes (a 503 says no count)
            if self._gone is not None:
                self._gone(
                    f"the server ended a pull from consumer {self._durable}: {status} {status_gist(status, reason)}"
                )
        elif status != StatusCode.REQUEST_TIMEOUT:
            log.info("bus.pull_ended", consumer=self._durable, status=status, reason=reason)
        if self._ended is not None:
            self._ended()

    async def close(self) -> None:
        """Stop receiving; the server drops the requests once their inbox has no interest."""
        sub, self._sub = self._sub, None
        self.forget()
        if sub is not None:
            with contextlib.suppress(ConnectionClosedError, ValueError):
                await sub.unsubscribe()
