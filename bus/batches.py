"""Pulling big batches from a durable consumer cheaply.

nats-py's `fetch` waits for each message of a batch with a task of its own,
which costs more than everything else the store does per message. Here one
subscription (a callback that appends to a list) collects the deliveries, and
each pull request ends in a way we can see: filled, or a status message sent
to that request's own reply subject. So requests go one at a time, and a late
status of one we stopped waiting for is never taken for the current one.

A fetch first asks for whatever is waiting (`no_wait`); only when nothing is,
it waits for one message (`expires`) and then takes what has arrived since.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from itertools import count

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import ConnectionClosedError, ConnectionReconnectingError
from nats.js.api import DEFAULT_PREFIX, Header

from .frames import ack_all
from .heal import consumer_gone, healer_of, status_gist

log = structlog.get_logger("jetjobs.bus")

ENDED = frozenset({"404", "408"})
"""`No Messages` and `Request Timeout`: the request is over, nothing is wrong."""

HEARTBEAT = "100"
MARGIN = 1.0
"""Seconds we wait past a request's expiry for the server's word that it ended."""

RETRY_PAUSE = 0.5
"""Seconds to wait before pulling again after a refusal or a lost connection."""


class PullRefused(Exception):
    """The server ended a pull request with an error status (e.g. consumer deleted, leader change)."""

    def __init__(self, message: str, *, gone: bool) -> None:
        super().__init__(message)
        self.gone = gone
        """Whether the status says nobody serves the consumer (deleted, or its stream gone)."""


TRANSIENT = (PullRefused, ConnectionClosedError, ConnectionReconnectingError)
"""During a leader change or reconnect: wait briefly and pull again."""


class _Request:
    """One pull request in flight: how many deliveries it may still bring, and its end."""

    def __init__(self, subject: str, wanted: int) -> None:
        self.subject = subject
        self.wanted = wanted
        self.done: asyncio.Future[tuple[str, str | None] | None] = asyncio.get_running_loop().create_future()
        """Resolves to the closing (status, description), or None when the request was filled."""

    def end(self, status: tuple[str, str | None] | None) -> None:
        if not self.done.done():
            self.done.set_result(status)


class BatchPuller:
    """A durable pull consumer read in batches through one callback subscription."""

    def __init__(self, nc: Client, stream: str, durable: str) -> None:
        self._nc = nc
        self._stream = stream
        self._durable = durable
        self._next = f"{DEFAULT_PREFIX}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._inbox = ""
        self._sub: Subscription | None = None
        self._ids = count()
        self._request: _Request | None = None
        self._buffer: list[Msg] = []

    async def fetch(self, batch: int, timeout: float = 1.0) -> list[Msg]:
        """Up to `batch` messages: what is waiting now, else the first to arrive within `timeout` seconds."""
        if batch <= 0:
            return []
        try:
            await self._fill(batch, timeout)
        except TRANSIENT as error:
            await self._retry(error)
        taken, self._buffer = self._buffer[:batch], self._buffer[batch:]
        return taken

    async def _retry(self, error: Exception) -> None:
        """Pause before pulling again; when the consumer may be gone, the connection's
        healer first makes again what is missing (and says so itself)."""
        healer = healer_of(self._nc)
        if isinstance(error, PullRefused) and error.gone and healer is not None:
            await healer.restore(str(error))
        else:
            log.warning("bus.fetch_retry", consumer=self._durable, error=str(error) or type(error).__name__)
        await asyncio.sleep(RETRY_PAUSE)

    async def _fill(self, batch: int, timeout: float) -> None:
        if self._sub is None:
            self._inbox = self._nc.new_inbox()
            self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._receive)
        if not self._buffer:
            await self._pull(batch, timeout, no_wait=True)
        if not self._buffer:
            await self._pull(1, timeout, no_wait=False)
            if self._buffer and batch > 1:
                await self._pull(batch - len(self._buffer), timeout, no_wait=True)

    async def _pull(self, batch: int, timeout: float, *, no_wait: bool) -> None:
        """Send one pull request and wait until it ends (or `timeout` plus a margin passes)."""
        request = _Request(f"{self._inbox}.{next(self._ids)}", batch)
        body: dict[str, int | bool] = {"batch": batch}
        if no_wait:
            body["no_wait"] = True
        else:
            body["expires"] = int(timeout * 1e9)
        self._request = request
        try:
            await self._nc.publish(self._next, json.dumps(body).encode(), reply=request.subject)
            status = await asyncio.wait_for(request.done, timeout + MARGIN)
        except TimeoutError:
            return  # the server never answered (a reconnect): the next request starts afresh
        finally:
            self._request = None
        if status is not None and status[0] not in ENDED:
            code, description = status
            raise PullRefused(
                f"{self._stream}/{self._durable}: pull request refused with status {code} {status_gist(code, description)}",
                gone=consumer_gone(code, description),
            )

    async def _receive(self, msg: Msg) -> None:
        """Deliveries go to the buffer; a status only ends the request it was sent for."""
        request = self._request
        if msg.reply:
            self._buffer.append(msg)
            if request is not None:
                request.wanted -= 1
                if request.wanted <= 0:
                    request.end(None)
            return
        headers = msg.headers or {}
        status = headers.get(Header.STATUS)
        if request is not None and msg.subject == request.subject and status != HEARTBEAT:
            request.end(None if status is None else (status, headers.get(Header.DESCRIPTION)))

    async def ack(self, msgs: Sequence[Msg]) -> None:
        """Acknowledge messages this puller handed out, all in one write."""
        await ack_all(self._nc, msgs)

    async def close(self) -> None:
        """Stop pulling; messages taken but not yet handed out are redelivered after AckWait."""
        if self._sub is not None:
            with contextlib.suppress(ConnectionClosedError, ConnectionReconnectingError, ValueError):
                await self._sub.unsubscribe()
            self._sub = None
        if self._buffer:
            log.info("bus.pull_left_unhandled", consumer=self._durable, count=len(self._buffer))
            self._buffer = []
