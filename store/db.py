"""Connecting to PostgreSQL, and telling an outage from bad data."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from .errors import StoreUnavailable

CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 60.0
RELEASE_GRACE = 0.25

UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.TransactionRollbackError,
)
"""Postgres is down, restarting, full or busy: wait and write the same batch again.
asyncpg raises its InterfaceError for a connection PostgreSQL closed (or that the pool
gave up as lost); a statement it refuses on an open one raises `StatementMisuse`."""


class StatementMisuse(Exception):
    """A statement asyncpg refused on an open connection as a misuse of its API (a wrong
    number of query arguments, one connection used by two tasks at once): a bug that no
    wait mends, so it surfaces as an internal error with its traceback, not as an outage."""


BAD_DATA: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.exceptions.ProgramLimitExceededError,
    OverflowError,
)
"""The rows themselves cannot be stored: retrying would never succeed. An
OverflowError is arithmetic on a message's values (a date past year 9999) while
its rows are made."""


class Db(Protocol):
    """What the store needs of a connection or pool (asyncpg's API)."""

    async def execute(self, query: str, *args: Any) -> str: ...
    async def fetch(self, query: str, *args: Any) -> list[Any]: ...
    async def fetchrow(self, query: str, *args: Any) -> Any: ...
    async def fetchval(self, query: str, *args: Any) -> Any: ...


@dataclass
class Deadline:
    """When the caller of the API request being served gives up. The store's waits on
    PostgreSQL for that request end then (TimeoutError, an outage to every handler), so
    a hung PostgreSQL neither fills the pool with work nobody waits for nor lets that
    work go on once it answers again."""

    at: float
    """Event-loop time."""
    seconds: float
    """How long the request was given."""
    began: bool = False
    """A statement was sent for it: PostgreSQL may carry it out whatever the store does."""

    @classmethod
    def until(cls, at: float) -> Deadline:
        return cls(at, max(at - asyncio.get_running_loop().time(), 0.0))

    def left(self) -> float:
        return max(self.at - asyncio.get_running_loop().time(), 0.0)


deadline: ContextVar[Deadline | None] = ContextVar("jetjobs_db_deadline", default=None)
"""The deadline of the API request being served, if any (never set for background work)."""


def _acquire_timeout(timeout: float | None) -> float | None:
    current = deadline.get()
    if current is None:
        return timeout
    return current.left() if timeout is None else min(timeout, current.left())


def _statement_timeout(timeout: float | None) -> float | None:
    """At most what the request has left; 0 when nothing is, which asyncpg refuses
    with a TimeoutError before sending the statement."""
    current = deadline.get()
    if current is None:
        return timeout
    left = current.left()
    current.began = current.began or left > 0
    return min(COMMAND_TIMEOUT if timeout is None else timeout, left)


def _bounded(method: Any) -> Any:
    """`method` of asyncpg's Connection, waiting no longer than the request it serves and
    telling a misuse from a closed connection."""

    async def call(
        self: _Connection, query: str, *args: Any, timeout: float | None = None, **options: Any
    ) -> Any:
        try:
            return await method(self, query, *args, timeout=_statement_timeout(timeout), **options)
        except asyncpg.InterfaceError as error:
            self.raise_misuse(error)
            raise

    return call


class _Connection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled connection whose statements (a transaction's BEGIN, COMMIT and ROLLBACK
    too) wait no longer than the request they serve, and tell a misuse from a closed
    connection."""

    execute = _bounded(asyncpg.Connection.execute)
    fetch = _bounded(asyncpg.Connection.fetch)
    fetchrow = _bounded(asyncpg.Connection.fetchrow)
    fetchval = _bounded(asyncpg.Connection.fetchval)

    def raise_misuse(self, error: asyncpg.InterfaceError) -> None:
        """`error` as the StatementMisuse it is when the connection is open; a value the
        statement cannot carry (DataError) stays what it is, bad data."""
        if not isinstance(error, asyncpg.DataError) and not self.is_closed():
            raise StatementMisuse(str(error)) from error


class _BoundedPool(asyncpg.Pool):  # type: ignore[misc]
    """A pool whose requests wait for a free connection no longer than their deadline:
    one that gets none has sent nothing."""

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=_acquire_timeout(timeout))

    async def release(self, connection: Any, *, timeout: float | None = None) -> None:
        """Past the deadline, a connection whose statement was cut short gets `RELEASE_GRACE`
        to have its cancellation acknowledged (as a live PostgreSQL does at once) and is
        closed otherwise, rather than keeping the answer waiting."""
        current = deadline.get()
        if current is not None and timeout is None:
            timeout = max(current.left(), RELEASE_GRACE)
        await super().release(connection, timeout=timeout)


def redact(url: str) -> str:
    """The URL without its password, fit for logs and error messages."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _unavailable(url: str, error: BaseException) -> StoreUnavailable:
    reason = str(error) or type(error).__name__
    return StoreUnavailable(
        f"cannot use PostgreSQL at {redact(url)} ({reason}): start it (`jetjobs up` runs one) "
        "or set JETJOBS_DATABASE_URL to a database you can reach"
    )


_CONNECT_ERRORS = (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError)
"""What opening a connection raises when PostgreSQL cannot be used there: an InterfaceError
while connecting is an authentication the server asks for that this client cannot do (a
statement of a pool's `init` that asyncpg refuses is a StatementMisuse, a bug)."""


async def connect(url: str) -> Any:
    """One connection, for one-shot work such as `migrate`."""
    try:
        # not bounded by a request's deadline: a prune goes on after its caller stopped waiting
        return await asyncpg.connect(url, timeout=CONNECT_TIMEOUT, command_timeout=COMMAND_TIMEOUT)
    except _CONNECT_ERRORS as error:
        raise _unavailable(url, error) from None


async def _no_session_state(conn: Any) -> None:
    """Nothing to undo when a connection goes back to the pool: the store leaves no
    session state on pooled connections (no SET, LISTEN, session advisory lock or
    cursor outside a transaction; `Bell` and migrations use connections of their
    own). asyncpg still rolls back an open transaction first. Its default reset
    query is a round trip that every caller of a pooled query waited for: it
    doubled the time of a lookup."""


_MAX_QUERIES = 50_000
"""Statements after which a pooled connection is replaced (asyncpg's default)."""


async def open_pool(url: str, size: int, init: Callable[[Any], Awaitable[None]] | None = None) -> Any:
    """The service's connection pool; fails at once with a clear error if the database is unreachable.

    Every connection is opened at start (and readied by `init`, as is any that
    replaces one later) and kept while idle: one opened on a request's path
    cost that request tens of milliseconds."""
    try:
        pool = _BoundedPool(
            url,
            min_size=size,
            max_size=size,
            max_queries=_MAX_QUERIES,
            max_inactive_connection_lifetime=0,
            init=init,
            reset=_no_session_state,
            loop=None,
            connection_class=_Connection,
            record_class=asyncpg.Record,
            timeout=CONNECT_TIMEOUT,
            command_timeout=COMMAND_TIMEOUT,
        )
        return await pool
    except _CONNECT_ERRORS as error:
        raise _unavailable(url, error) from None
