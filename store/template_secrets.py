"""A template's values of its application's secret fields, kept out of its env.

Each is sealed with the store's keyring (as credentials are), bound to the template
and the field, in `template_secret`. Jobs carry such a field by name only, and the
executor fetches its value with `secrets.fetch`, so the value is never in clear in
PostgreSQL or on NATS. Templates saved before this hold them in clear in their env:
the store seals them when it starts with a key (`seal_at_start`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import structlog

from contracts.api import ApiFailure, TemplateUpdate
from contracts.models import Application, TemplateSpec

from .board import secret_fields
from .credentials import Keyring, no_key
from .db import Db
from .queries import Queries
from .rows import TemplateRow
from .tenant_queries import TenantQueries

log = structlog.get_logger("jetjobs.store")

SEALING_LOCK = 0x6A6A2D7365616C
"""The advisory lock key ("jj-seal" in ASCII) a store holds while sealing values held in clear."""


def held_in_clear(count: int) -> str:
    """The warning of a store without a key about values it cannot encrypt, and the fix."""
    templates = "1 template holds" if count == 1 else f"{count} templates hold"
    return (
        f"{templates} values of secret fields in clear in PostgreSQL (and their jobs carry them): "
        "make a key with `jetjobs credentials new-key > FILE` and restart the store with "
        "JETJOBS_SECRET_KEY_FILE=FILE to encrypt them"
    )


def secret_values(app: Application | None, env: Mapping[str, str]) -> dict[str, str]:
    """The values `env` gives `app`'s secret fields (an empty one hides nothing)."""
    if app is None:
        return {}
    secret = set(secret_fields(app))
    return {name: value for name, value in env.items() if name in secret and value}


def without(env: Mapping[str, str], names: Collection[str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if name not in names}


def kept_sealed(current: TemplateRow, update: TemplateUpdate) -> set[str]:
    """The sealed fields an update leaves as they are: as with the rest of the env, none
    when it replaces the env, and all but those it sets or unsets otherwise."""
    if "env" in update.changes:
        return set()
    return set(current.sealed) - set(update.set_env) - set(update.unset_env)


def to_store(
    spec: TemplateSpec, app: Application | None, keyring: Keyring | None, held: Mapping[str, str]
) -> tuple[TemplateSpec, dict[str, str]]:
    """The spec to store, its env without secret values, and the values to seal. With no
    key, a value the template `held` in clear already stays so; a new one is refused."""
    values = secret_values(app, spec.env)
    if keyring is None:
        new = sorted(name for name, value in values.items() if held.get(name) != value)
        if new:
            fields = "field" if len(new) == 1 else "fields"
            raise ApiFailure(503, no_key(f"the value of secret {fields} {', '.join(new)} of a template"))
        return spec, {}
    if not values:
        return spec, {}
    return spec.model_copy(update={"env": without(spec.env, values)}), values


async def store_sealed(
    conn: Db, keyring: Keyring | None, template_id: int, values: Mapping[str, str], keep: Collection[str]
) -> None:
    """Seal `values` for the template; of its sealed fields before, only `keep` stay."""
    queries = TenantQueries(conn)
    await queries.keep_template_secrets(template_id, {*keep, *values})
    if not values:
        return
    assert keyring is not None  # `to_store` gave values to seal
    for name, value in sorted(values.items()):
        await queries.put_template_secret(template_id, name, keyring.seal_field(template_id, name, value))


async def seal_held(conn: Db, keyring: Keyring | None, template_ids: Sequence[int] | None = None) -> int:
    """Seal the secret values these templates (every one by default) hold in clear in their
    env: saved before values were sealed, or their application has declared the field
    secret since. With no key they stay as they are, with a warning. Returns how many
    templates held some."""
    queries = Queries(conn)
    if template_ids is None:  # only those SQL finds hold any: reading every template took seconds
        template_ids = await queries.templates_with_secret_values()
    rows = await queries.templates(ids=template_ids, deleted=None) if template_ids else []
    held = [row.template.id for row in rows if secret_values(row.app, row.template.env)]
    if not held:
        return 0
    if keyring is None:
        log.warning("store.template_secrets_in_clear", templates=len(held), fix=held_in_clear(len(held)))
        return len(held)
    for template_id in held:
        await _seal_row(conn, keyring, template_id)
    log.info("store.template_secrets_sealed", templates=len(held), key=keyring.primary)
    return len(held)


async def _seal_row(conn: Db, keyring: Keyring, template_id: int) -> None:
    queries = Queries(conn)
    await queries.lock_template(template_id)
    row = await queries.template(template_id)  # again, under the lock
    values = {} if row is None else secret_values(row.app, row.template.env)
    if row is not None and values:
        await TenantQueries(conn).set_template_env(template_id, without(row.template.env, values))
        await store_sealed(conn, keyring, template_id, values, keep=row.sealed)


async def seal_at_start(pool: Any, keyring: Keyring | None) -> int:
    """`seal_held` for every template, by one store at a time (a second one starting
    with it finds nothing left), in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        await TenantQueries(conn).lock_secret_sealing(SEALING_LOCK)
        return await seal_held(conn, keyring)
