"""The store's API as a NATS micro service, and the client every caller uses."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import TypeVar

import structlog
from nats import micro
from nats.aio.client import Client
from nats.errors import MaxPayloadError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.micro.request import Request
from nats.micro.service import Service
from pydantic import BaseModel, ValidationError

from contracts import subjects as s
from contracts.api import OPERATIONS, ApiError, ApiFailure, Operation
from contracts.errors import describe
from contracts.tenants import ACTOR_LONGEST

log = structlog.get_logger("jetjobs.bus")

R = TypeVar("R", bound=BaseModel)
Handler = Callable[[BaseModel], Awaitable[BaseModel]]

ACTOR_HEADER = "Jetjobs-Actor"
ANONYMOUS = "anonymous"
current_actor: ContextVar[str] = ContextVar("jetjobs_actor", default=ANONYMOUS)
"""Who made the API request being answered (the `Jetjobs-Actor` header)."""

TOKEN_HEADER = "Jetjobs-Token"
current_token: ContextVar[str | None] = ContextVar("jetjobs_token", default=None)
"""The API token the request presented (the `Jetjobs-Token` header), which the store verifies."""

TIMEOUT_HEADER = "Jetjobs-Timeout"
"""Seconds the caller waits for the answer (`ApiClient` sends its timeout)."""
DEFAULT_TIMEOUT = 10.0
"""`ApiClient`'s wait, and the one assumed of a caller that does not say."""
SHORTEST_WAIT = 1.0
"""Seconds the store gives a request at least, whatever its caller says: less would
report PostgreSQL too slow when the caller's own timeout is what is short."""
ANSWER_MARGIN = 1.0
"""Seconds, at most a fifth of the wait, kept for an answer to reach the caller in time."""
answer_by: ContextVar[float | None] = ContextVar("jetjobs_answer_by", default=None)
"""Event-loop time by which the request being served must be answered: its caller gives up
soon after, and work done later is work nobody waits for (see `store.db.Deadline`)."""

reply_room: ContextVar[int] = ContextVar("jetjobs_reply_room", default=1024 * 1024)
"""How many bytes the answer being made may take: the NATS server's `max_payload`."""

SCHEMA_METADATA = "schema"
"""The service metadata in which a store announces its schema (the highest migration
it knows), so that operators and other stores can tell versions apart."""

ERROR_HEADER = "Nats-Service-Error"
ERROR_CODE_HEADER = "Nats-Service-Error-Code"


async def _reply_error(request: Request, code: int, message: str) -> None:
    body = ApiError(error=message, code=code).model_dump_json().encode()
    await request.respond_error(str(code), message.replace("\n", " ")[:1000], data=body)


def _caller_wait(headers: Mapping[str, str]) -> float:
    """The caller's timeout from its header; a caller that sends none or a bad one is
    taken to wait as long as `ApiClient` does."""
    try:
        wait = float(headers.get(TIMEOUT_HEADER, DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT
    if not math.isfinite(wait) or wait <= 0:
        return DEFAULT_TIMEOUT
    return max(wait, SHORTEST_WAIT)


NO_REPLY = "no reply subject set"
"""What nats-py raises answering a request published without a reply subject."""


async def _answered(request: Request, op: str, spec: Operation, handler: Handler, room: int) -> None:
    """The request served; one published without a reply subject (a plain publish,
    fire and forget) is carried out all the same, and its answer dropped."""
    try:
        await _answer(request, op, spec, handler, room)
    except ValueError as error:
        if str(error) != NO_REPLY:
            raise
        log.info("api.not_answered", operation=op, reason="the request has no reply subject")


async def _answer(request: Request, op: str, spec: Operation, handler: Handler, room: int) -> None:
    wait = _caller_wait(request.headers or {})
    answer_by.set(asyncio.get_running_loop().time() + wait - min(ANSWER_MARGIN, wait / 5))
    reply_room.set(room)
    actor = (request.headers or {}).get(ACTOR_HEADER) or ANONYMOUS
    if len(actor) > ACTOR_LONGEST:  # it is written to the audit log of every change
        await _reply_error(
            request,
            400,
            f"{op}: the {ACTOR_HEADER} header is {len(actor):,} characters long: give at most {ACTOR_LONGEST}",
        )
        return
    current_actor.set(actor)
    current_token.set((request.headers or {}).get(TOKEN_HEADER) or None)
    try:
        parsed = spec.request.model_validate_json(request.data or b"{}")
    except ValidationError as error:
        await _reply_error(request, 400, f"{op}: {describe(error)}")
        return
    except Exception:  # a validator's own failure: the caller is answered, not left to time out
        await _internal_error(request, op)
        return
    try:
        reply = await handler(parsed)
    except ApiFailure as failure:
        await _reply_error(request, failure.code, failure.message)
        return
    except Exception:
        await _internal_error(request, op)
        return
    body = reply.model_dump_json().encode()
    try:
        await request.respond(body)
    except MaxPayloadError:
        log.warning("api.reply_too_large", operation=op, size=len(body))
        await _reply_error(
            request,
            413,
            f"{op}: the answer is {len(body)} bytes, more than this NATS server takes in one message "
            f"(max_payload, {room} bytes): for a list, ask for fewer items with `limit`; "
            "otherwise raise max_payload in the server's configuration to read it",
        )


async def _internal_error(request: Request, op: str) -> None:
    log.exception("api.failed", operation=op)
    await _reply_error(request, 500, f"{op}: internal error in the store; its log has the details")


class ApiServer:
    """Serves every operation in `contracts.api.OPERATIONS`, each request in its
    own task (nats-py runs one handler at a time per endpoint)."""

    def __init__(self, handlers: Mapping[str, Handler]) -> None:
        missing = set(OPERATIONS) - set(handlers)
        if missing:
            raise ValueError(f"no handler for API operations: {', '.join(sorted(missing))}")
        self._handlers = handlers
        self._tasks: set[asyncio.Task[None]] = set()
        self._service: Service | None = None
        self._nc: Client | None = None

    def _endpoint(self, op: str) -> Callable[[Request], Awaitable[None]]:
        spec, handler = OPERATIONS[op], self._handlers[op]

        async def receive(request: Request) -> None:
            room = reply_room.get() if self._nc is None else self._nc.max_payload
            task = asyncio.create_task(_answered(request, op, spec, handler, room))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return receive

    async def start(self, nc: Client, version: str, schema: int) -> None:
        """Register the service, and return once the server routes every endpoint to it;
        it answers `$SRV.PING`, `$SRV.INFO` (its metadata gives `schema`) and `$SRV.STATS`."""
        self._nc = nc
        self._service = await micro.add_service(
            nc,
            name=s.API_SERVICE,
            version=version,
            metadata={SCHEMA_METADATA: str(schema)},
            description="jetjobs store: companies, applications, templates and jobs",
            queue_group="jetjobs-store",
        )
        for op, spec in OPERATIONS.items():
            await self._service.add_endpoint(
                name=op.replace(".", "-"),
                subject=s.api_subject(op),
                handler=self._endpoint(op),
                metadata={"description": spec.description},
            )
        await nc.flush()  # the server has every endpoint's subscription before callers are told it is up

    async def stop(self) -> None:
        """Stop answering and let the requests in flight finish."""
        if self._service is not None:
            await self._service.stop()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class ApiClient:
    """Calls `jetjobs.api.<op>`; every failure becomes an `ApiFailure` with a clear message."""

    def __init__(
        self, nc: Client, timeout: float = DEFAULT_TIMEOUT, actor: str | None = None, token: str | None = None
    ) -> None:
        self._nc = nc
        self._timeout = timeout
        headers = {TIMEOUT_HEADER: f"{timeout:g}"}
        if actor:
            headers[ACTOR_HEADER] = actor
        if token:
            headers[TOKEN_HEADER] = token
        self._headers = headers

    async def call(self, op: str, request: BaseModel, reply: type[R]) -> R:
        """Send one request and decode its reply. Fields left at their defaults are left
        out, so a store older than this client still takes a request that uses none of
        its newer fields (it refuses fields it does not know)."""
        subject = s.api_subject(op)
        payload = request.model_dump_json(exclude_defaults=True).encode()
        try:
            msg = await self._nc.request(subject, payload, timeout=self._timeout, headers=self._headers)
        except MaxPayloadError:
            raise ApiFailure(
                413,
                f"{op}: the request is {len(payload)} bytes and the NATS server takes at most "
                f"{self._nc.max_payload} (its max_payload): send less, e.g. fewer or shorter values, "
                "or raise max_payload in the server's configuration",
            ) from None
        except NoRespondersError:
            raise ApiFailure(
                503, "no jetjobs store is answering: start `jetjobs store` or `jetjobs up`"
            ) from None
        except (NatsTimeout, TimeoutError):
            raise ApiFailure(504, f"the store did not answer {op} within {self._timeout:g} s") from None
        headers = msg.headers or {}
        if ERROR_CODE_HEADER in headers:
            raise ApiFailure(int(headers[ERROR_CODE_HEADER]), _error_text(msg.data, headers))
        return reply.model_validate_json(msg.data)


def _error_text(body: bytes, headers: Mapping[str, str]) -> str:
    """The whole message from the error body (lines kept: `flow validate` lists a
    problem per line); the header, one line of at most 1,000 characters, without one."""
    try:
        return ApiError.model_validate_json(body).error
    except ValidationError:
        return headers.get(ERROR_HEADER, "error")
