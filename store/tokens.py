"""Actor authentication: API tokens issued by an admin, kept only as hashes.

A request that presents a token (the `Jetjobs-Token` header) is made as the
token's actor, whatever actor it names; an unknown or revoked token is
refused. A store started with `require_tokens` refuses requests without one;
otherwise (one operator, `jetjobs up`) the named actor is taken at its word,
as before tokens existed, except by a company that lists its actors for what
its executors do (`store.actors.permit`). The first admin token is made with direct database
access (`bootstrap_token`), since no one can yet ask the API for it."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any

import structlog
from pydantic import BaseModel

from bus.api import current_actor, current_token
from contracts import tenants as t
from contracts.api import ApiFailure

from .actors import audit, token_proven
from .api import _typed
from .db import connect
from .migrate import apply_migrations
from .pages import cursor_key, keyed_page
from .tenant_queries import TenantQueries

log = structlog.get_logger("jetjobs.store")

PREFIX = "jjt_"
ISSUE_HINT = "ask an admin for one (`jetjobs actor token create ACTOR`) and set JETJOBS_API_TOKEN"
BOOTSTRAP_HINT = (
    "the first admin token is made with `jetjobs actor token create ACTOR --admin --bootstrap`, "
    "which needs the database URL"
)

Handler = Callable[[BaseModel], Awaitable[BaseModel]]

token_admin: ContextVar[bool] = ContextVar("jetjobs_token_admin", default=False)
"""Whether the request being answered presented a valid admin token."""


def new_token() -> str:
    """A fresh token: 256 random bits, recognisable by its prefix in a leaked file."""
    return PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> bytes:
    """What the database keeps of a token."""
    return hashlib.sha256(token.encode()).digest()


async def issue(db: Any, request: t.TokenCreate, created_by: str) -> t.TokenIssued:
    token = new_token()
    info = await TenantQueries(db).insert_token(
        request.actor, token_digest(token), request.admin, request.note, created_by
    )
    log.info("token.issued", id=info.id, actor=info.actor, admin=info.admin, by=created_by)
    return t.TokenIssued(info=info, token=token)


async def bootstrap_token(database_url: str, request: t.TokenCreate) -> t.TokenIssued:
    """Issue a token straight in the database (migrating it first if needed): how
    the first admin gets a token, by whoever holds the database credentials."""
    conn = await connect(database_url)
    try:
        await apply_migrations(conn)
        issued = await issue(conn, request, created_by="bootstrap")
        await TenantQueries(conn).write_audit(
            "bootstrap",
            "token.create",
            None,
            {"actor": request.actor, "admin": request.admin, "id": issued.info.id},
        )
        return issued
    finally:
        await conn.close()


CACHE_SECONDS = 5.0
"""How long a verified token is trusted without asking Postgres again: a token
revoked through another store is refused here at most this much later."""
CACHE_ENTRIES = 10_000


class TokenCache:
    """Recently verified tokens, so a busy caller costs no query per request."""

    def __init__(self, seconds: float = CACHE_SECONDS) -> None:
        self._seconds = seconds
        self._known: dict[bytes, tuple[float, t.TokenInfo]] = {}

    def get(self, digest: bytes) -> t.TokenInfo | None:
        found = self._known.get(digest)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def put(self, digest: bytes, info: t.TokenInfo) -> None:
        if len(self._known) >= CACHE_ENTRIES:
            self._known.clear()
        self._known[digest] = (time.monotonic() + self._seconds, info)

    def forget(self, token_id: int) -> None:
        """Drop a revoked token at once (on this store)."""
        self._known = {d: entry for d, entry in self._known.items() if entry[1].id != token_id}


class Authenticator:
    """Verifies the token of every request before its handler runs."""

    def __init__(self, pool: Any, required: bool, cache: TokenCache | None = None) -> None:
        self._pool = pool
        self._required = required
        self._cache = cache or TokenCache()

    async def _lookup(self, token: str) -> t.TokenInfo | None:
        digest = token_digest(token)
        info = self._cache.get(digest)
        if info is None:
            info = await TenantQueries(self._pool).token_by_hash(digest)
            if info is not None and info.revoked_at is None:
                self._cache.put(digest, info)
        return info

    async def authenticate(self) -> None:
        """Make the request's actor the token's, or refuse the request."""
        token_admin.set(False)
        token_proven.set(False)
        token = current_token.get()
        if token is None:
            if self._required:
                raise ApiFailure(401, f"this store requires an API token: {ISSUE_HINT}")
            return
        info = await self._lookup(token)
        if info is None:
            log.warning("api.unknown_token", named=current_actor.get())
            raise ApiFailure(401, f"unknown API token: check JETJOBS_API_TOKEN, or {ISSUE_HINT}")
        if info.revoked_at is not None:
            log.warning("api.revoked_token", id=info.id, actor=info.actor)
            raise ApiFailure(
                401,
                f"API token {info.id} of actor '{info.actor}' was revoked at "
                f"{info.revoked_at:%Y-%m-%d %H:%M} UTC: {ISSUE_HINT}",
            )
        current_actor.set(info.actor)
        token_admin.set(info.admin)
        token_proven.set(True)

    def wrap(self, handlers: Mapping[str, Handler]) -> dict[str, Handler]:
        """Every handler, behind authentication."""
        return {op: self._guarded(handler) for op, handler in handlers.items()}

    def _guarded(self, handler: Handler) -> Handler:
        async def handle(request: BaseModel) -> BaseModel:
            await self.authenticate()
            return await handler(request)

        return handle


def _require_admin(what: str) -> None:
    if not token_admin.get():
        raise ApiFailure(403, f"only an actor with an admin token may {what}: {BOOTSTRAP_HINT}")


class TokenApi:
    """Issuing, listing and revoking tokens: for admin tokens only."""

    def __init__(self, pool: Any, cache: TokenCache) -> None:
        self._pool = pool
        self._cache = cache

    def handlers(self) -> dict[str, Handler]:
        return {
            "token.create": _typed("token.create", t.TokenCreate, self.create),
            "token.revoke": _typed("token.revoke", t.TokenRef, self.revoke),
            "token.list": _typed("token.list", t.TokenFilter, self.list),
        }

    async def create(self, request: t.TokenCreate) -> t.TokenIssued:
        _require_admin("issue API tokens")
        async with self._pool.acquire() as conn, conn.transaction():
            issued = await issue(conn, request, created_by=current_actor.get())
            await audit(
                conn,
                "token.create",
                None,
                {"actor": request.actor, "admin": request.admin, "id": issued.info.id},
            )
        return issued

    async def revoke(self, request: t.TokenRef) -> t.TokenInfo:
        _require_admin("revoke API tokens")
        async with self._pool.acquire() as conn, conn.transaction():
            info = await TenantQueries(conn).revoke_token(request.id)
            if info is None:
                raise ApiFailure(404, f"no API token {request.id}: `jetjobs actor token list` shows them")
            await audit(conn, "token.revoke", None, {"id": info.id, "actor": info.actor})
        self._cache.forget(info.id)
        log.info("token.revoked", id=info.id, actor=info.actor)
        return info

    async def list(self, request: t.TokenFilter) -> t.TokenList:
        _require_admin("list API tokens")
        after = cursor_key("token.list", request.after, int)
        found = await TenantQueries(self._pool).list_tokens(
            request.actor, request.offset, request.limit + 1, None if after is None else after[0]
        )
        page = keyed_page(found, request.limit, lambda token: (token.id,))
        return t.TokenList(tokens=page.items, more=page.more, next=page.next)
