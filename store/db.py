"""Connecting to PostgreSQL, and telling an outage from bad data."""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import asyncpg

from .errors import StoreUnavailable

CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 60.0

UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.TransactionRollbackError,
)
"""Postgres is down, restarting, full or busy: wait and write the same batch again."""

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


async def connect(url: str) -> Any:
    """One connection, for one-shot work such as `migrate`."""
    try:
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


async def open_pool(url: str, size: int, init: Callable[[Any], Awaitable[None]] | None = None) -> Any:
    """The service's connection pool; fails at once with a clear error if the database is unreachable.

    Every connection is opened at start (and readied by `init`, as is any that
    replaces one later) and kept while idle: one opened on a request's path
    cost that request tens of milliseconds."""
    try:
        return await asyncpg.create_pool(
            url,
            min_size=size,
            max_size=size,
            max_inactive_connection_lifetime=0,
            init=init,
            reset=_no_session_state,
            timeout=CONNECT_TIMEOUT,
            command_timeout=COMMAND_TIMEOUT,
        )
    except _CONNECT_ERRORS as error:
        raise _unavailable(url, error) from None
