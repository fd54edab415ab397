"""Re-encrypting every credential under the keyring's first key, in one transaction."""

from __future__ import annotations

import structlog

from .credentials import Keyring, UndecryptableError
from .db import connect
from .tenant_queries import TenantQueries

log = structlog.get_logger("jetjobs.store")


class RotationError(Exception):
    """A credential cannot be opened with the keys given; nothing was changed."""


async def rotate_key(database_url: str, keyring: Keyring) -> int:
    """Re-seal every credential not yet under `keyring.primary`; returns how many.
    All or nothing: a credential no key opens leaves the database unchanged."""
    conn = await connect(database_url)
    try:
        async with conn.transaction():
            queries = TenantQueries(conn)
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
    finally:
        await conn.close()
    log.info("credentials.rotated", credentials=changed, key=keyring.primary)
    return changed
