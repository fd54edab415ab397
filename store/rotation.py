"""Re-encrypting every credential, template secret and job secret under the keyring's
first key, in one transaction."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from .credentials import Keyring, UndecryptableError
from .db import connect
from .tenant_queries import SealedField, SealedJobField, TenantQueries

log = structlog.get_logger("jetjobs.store")


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
    changed = 0
    for stored in await queries.sealed_credentials():
        if stored.sealed.key_id == keyring.primary:
            continue
        try:
            values = keyring.open(stored.company, stored.name, stored.sealed)
        except UndecryptableError as error:
            raise RotationError(f"{error}; nothing was re-encrypted") from None
        await queries.reseal_credential(stored.id, keyring.seal(stored.company, stored.name, values))
        changed += 1
    return changed


async def _template_secrets(queries: TenantQueries, keyring: Keyring) -> int:
    changed = 0
    for field in await queries.sealed_template_secrets():
        if field.sealed.key_id == keyring.primary:
            continue
        try:
            value = keyring.open_field(field.template_id, field.name, field.sealed)
        except UndecryptableError as error:
            raise RotationError(f"{error}; nothing was re-encrypted") from None
        sealed = keyring.seal_field(field.template_id, field.name, value)
        await queries.reseal_template_secret(SealedField(field.template_id, field.name, sealed))
        changed += 1
    return changed


async def _job_secrets(queries: TenantQueries, keyring: Keyring) -> int:
    changed = 0
    for field in await queries.sealed_job_secrets():
        if field.sealed.key_id == keyring.primary:
            continue
        try:
            value = keyring.open_job_field(field.job_id, field.name, field.sealed)
        except UndecryptableError as error:
            raise RotationError(f"{error}; nothing was re-encrypted") from None
        sealed = keyring.seal_job_field(field.job_id, field.name, value)
        await queries.reseal_job_secret(SealedJobField(field.job_id, field.name, sealed))
        changed += 1
    return changed
