"""Re-encrypting every credential, template secret and job secret under the keyring's
first key, in one transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import structlog

from .credentials import Keyring, Sealed, UndecryptableError
from .db import connect
from .tenant_queries import SealedField, SealedJobField, StoredCredential, TenantQueries

log = structlog.get_logger("jetjobs.store")

S = TypeVar("S", StoredCredential, SealedField, SealedJobField)


class RotationError(Exception):
    """A credential, template secret or job secret cannot be opened with the keys given;
    nothing was changed."""


@dataclass(frozen=True)
class Rotated:
    """How many credential sets, template secret values and job secret values were re-encrypted."""

    credentials: int
    template_secrets: int
    job_secrets: int = 0


async def rotate_key(database_url: str, keyring: Keyring) -> Rotated:
    """Re-seal every credential, template secret and job secret not yet under
    `keyring.primary`. All or nothing: a value no key opens leaves the database unchanged."""
    conn = await connect(database_url)
    try:
        async with conn.transaction():
            queries = TenantQueries(conn)
            rotated = Rotated(
                await _credentials(queries, keyring),
                await _template_secrets(queries, keyring),
                await _job_secrets(queries, keyring),
            )
    finally:
        await conn.close()
    log.info(
        "credentials.rotated",
        credentials=rotated.credentials,
        template_secrets=rotated.template_secrets,
        job_secrets=rotated.job_secrets,
        key=keyring.primary,
    )
    return rotated


async def _credentials(queries: TenantQueries, keyring: Keyring) -> int:
    def resealed(c: StoredCredential) -> Sealed:
        return keyring.seal(c.company, c.name, keyring.open(c.company, c.name, c.sealed))

    async def store(c: StoredCredential, sealed: Sealed) -> None:
        await queries.reseal_credential(c.id, sealed)

    return await _reseal(await queries.sealed_credentials(), keyring, resealed, store)


async def _template_secrets(queries: TenantQueries, keyring: Keyring) -> int:
    def resealed(f: SealedField) -> Sealed:
        return keyring.seal_field(f.template_id, f.name, keyring.open_field(f.template_id, f.name, f.sealed))

    async def store(f: SealedField, sealed: Sealed) -> None:
        await queries.reseal_template_secret(SealedField(f.template_id, f.name, sealed))

    return await _reseal(await queries.sealed_template_secrets(), keyring, resealed, store)


async def _job_secrets(queries: TenantQueries, keyring: Keyring) -> int:
    def resealed(f: SealedJobField) -> Sealed:
        return keyring.seal_job_field(f.job_id, f.name, keyring.open_job_field(f.job_id, f.name, f.sealed))

    async def store(f: SealedJobField, sealed: Sealed) -> None:
        await queries.reseal_job_secret(SealedJobField(f.job_id, f.name, sealed))

    return await _reseal(await queries.sealed_job_secrets(), keyring, resealed, store)


async def _reseal(
    items: Sequence[S],
    keyring: Keyring,
    resealed: Callable[[S], Sealed],
    store: Callable[[S, Sealed], Awaitable[None]],
) -> int:
    """Re-seal each item not yet under the first key; how many. One no key opens stops
    it all (the caller's transaction leaves the database unchanged)."""
    changed = 0
    for item in items:
        if item.sealed.key_id == keyring.primary:
            continue
        try:
            sealed = resealed(item)
        except UndecryptableError as error:
            raise RotationError(f"{error}; nothing was re-encrypted") from None
        await store(item, sealed)
        changed += 1
    return changed
