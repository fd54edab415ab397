"""One typed method per query of `sql/tenants.sql`."""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

from contracts.lifecycle import ExitCodes
from contracts.models import ArtifactSpec
from contracts.tenants import (
    ActorEntry,
    ArtifactInfo,
    ArtifactUpload,
    AuditEntry,
    CredentialInfo,
    TokenInfo,
)

from . import rows
from .credentials import Sealed
from .db import Db
from .loader import Query, parse_queries
from .visibility import Reader


@functools.cache
def tenant_sql() -> dict[str, Query]:
    """Every query of `store/sql/tenants.sql`, read once."""
    text = resources.files("store").joinpath("sql", "tenants.sql").read_text(encoding="utf-8")
    return parse_queries(text)


@dataclass(frozen=True)
class TemplateExtras:
    """What a template's application and credentials add to its scheduled view."""

    artifacts: list[ArtifactSpec]
    exit_codes: ExitCodes | None
    credential_fields: frozenset[str]


@dataclass(frozen=True)
class StoredCredential:
    id: int
    company: str
    name: str
    fields: list[str]
    sealed: Sealed


@dataclass(frozen=True)
class SealedField:
    """The sealed value a template sets for one secret field."""

    template_id: int
    name: str
    sealed: Sealed


@dataclass(frozen=True)
class SealedJobField:
    """The sealed value a run gives one secret field of its template."""

    job_id: str
    name: str
    sealed: Sealed


@dataclass(frozen=True)
class OwnSecrets:
    """The sealed values a job's template sets for some secret fields, and those its run gave."""

    template: list[SealedField]
    job: list[SealedJobField]


@dataclass(frozen=True)
class TemplateName:
    id: int
    name: str


@dataclass(frozen=True)
class Standing:
    """An actor's roles in a company, whether the company lists any actor, and whether it is
    known: it exists, or has jobs (published for a company the store does not have)."""

    roles: set[str]
    closed: bool
    known: bool


@dataclass(frozen=True)
class RunLookup:
    """A template to run now, what its application and credentials add (None when it
    runs no application), and what the calling actor may do in its company."""

    row: rows.TemplateRow
    extras: TemplateExtras | None
    roles: set[str]
    closed: bool


def _extras(row: Any) -> TemplateExtras:
    exit_codes = None if row["exit_codes"] is None else ExitCodes.model_validate_json(row["exit_codes"])
    return TemplateExtras(
        artifacts=[ArtifactSpec.model_validate(a) for a in json.loads(row["artifacts"])],
        exit_codes=exit_codes,
        credential_fields=frozenset(row["credential_fields"]),
    )


def _artifact(row: Any) -> ArtifactInfo:
    return ArtifactInfo(**{k: row[k] for k in ArtifactInfo.model_fields})


def _sealed(row: Any) -> Sealed:
    return Sealed(row["key_id"], bytes(row["nonce"]), bytes(row["ciphertext"]))


def _stored(row: Any) -> StoredCredential:
    return StoredCredential(
        row["id"], row["company"], row["name"], list(row.get("fields") or []), _sealed(row)
    )


class TenantQueries:
    """The tenant queries, bound to one connection (or the pool)."""

    def __init__(self, db: Db) -> None:
        self._db = db
        self._sql = tenant_sql()

    def _q(self, name: str) -> str:
        return self._sql[name].sql

    async def set_app_extras(
        self, app_id: int, artifacts: Sequence[ArtifactSpec], codes: ExitCodes | None
    ) -> None:
        listed = json.dumps([a.model_dump() for a in artifacts])
        await self._db.execute(
            self._q("set_app_extras"), app_id, listed, None if codes is None else codes.model_dump_json()
        )

    async def app_document(self, app_id: int) -> dict[str, Any]:
        return dict(json.loads(await self._db.fetchval(self._q("app_document"), app_id)))

    async def template_extras(self, template_ids: Sequence[int]) -> dict[int, TemplateExtras]:
        found = await self._db.fetch(self._q("template_extras"), list(template_ids))
        return {row["template_id"]: _extras(row) for row in found}

    async def template_to_run(self, template_id: int, actor: str) -> RunLookup | None:
        """The template, its extras and the actor's roles in its company: one round trip
        on one connection (three concurrent lookups took longer on a busy machine)."""
        row = await self._db.fetchrow(self._q("template_to_run"), template_id, actor)
        if row is None:
            return None
        extras = None if row["artifacts"] is None else _extras(row)
        return RunLookup(rows.template(row), extras, set(row["roles"]), bool(row["closed"]))

    async def upsert_credential(
        self, company_id: int, name: str, kind: str, fields: Sequence[str], sealed: Sealed
    ) -> datetime:
        row = await self._db.fetchrow(
            self._q("upsert_credential"),
            company_id,
            name,
            kind,
            list(fields),
            sealed.key_id,
            sealed.nonce,
            sealed.ciphertext,
        )
        updated: datetime = row["updated_at"]
        return updated

    async def company_credentials(self, company_id: int, company: str) -> list[CredentialInfo]:
        found = await self._db.fetch(self._q("company_credentials"), company_id)
        return [
            CredentialInfo(
                company=company,
                name=r["name"],
                kind=r["kind"],
                fields=list(r["fields"]),
                updated_at=r["updated_at"],
            )
            for r in found
        ]

    async def credential_id(self, company_id: int, name: str) -> int | None:
        value = await self._db.fetchval(self._q("credential_id"), company_id, name)
        return None if value is None else int(value)

    async def lock_credential(
        self, company_id: int, company: str, name: str
    ) -> tuple[int, CredentialInfo] | None:
        """The credential set's id and info, locked until the transaction ends (to delete it)."""
        row = await self._db.fetchrow(self._q("lock_credential"), company_id, name)
        if row is None:
            return None
        info = CredentialInfo(
            company=company, name=row["name"], kind=row["kind"], fields=list(row["fields"]),
            updated_at=row["updated_at"],
        )  # fmt: skip
        return int(row["id"]), info

    async def credential_users(self, credential_id: int) -> list[TemplateName]:
        """The live templates that use the credential set."""
        found = await self._db.fetch(self._q("credential_users"), credential_id)
        return [TemplateName(r["id"], r["name"]) for r in found]

    async def credential_jobs(self, credential_id: int, limit: int) -> list[tuple[str, int]]:
        """Up to `limit` unfinished jobs, with their templates, that still fetch the set's values."""
        found = await self._db.fetch(self._q("credential_jobs"), credential_id, limit)
        return [(r["id"], r["template_id"]) for r in found]

    async def delete_credential(self, credential_id: int) -> None:
        await self._db.execute(self._q("delete_credential"), credential_id)

    async def sealed_credentials(self) -> list[StoredCredential]:
        return [_stored(r) for r in await self._db.fetch(self._q("sealed_credentials"))]

    async def reseal_credential(self, credential_id: int, sealed: Sealed) -> None:
        await self._db.execute(
            self._q("reseal_credential"), credential_id, sealed.key_id, sealed.nonce, sealed.ciphertext
        )

    async def own_secret_values(
        self, template_id: int, job_id: str, company: str, names: Sequence[str]
    ) -> OwnSecrets:
        found = await self._db.fetch(self._q("own_secret_values"), template_id, list(names), job_id, company)
        return OwnSecrets(
            [SealedField(template_id, r["name"], _sealed(r)) for r in found if r["job_id"] is None],
            [SealedJobField(job_id, r["name"], _sealed(r)) for r in found if r["job_id"] is not None],
        )

    async def app_job_secret_values(
        self, job_id: str, company: str, names: Sequence[str]
    ) -> list[SealedJobField]:
        """The values sealed for a job of `company` that runs an application directly."""
        found = await self._db.fetch(self._q("app_job_secret_values"), job_id, company, list(names))
        return [SealedJobField(job_id, r["name"], _sealed(r)) for r in found]

    async def put_job_secrets(
        self, job_id: str, company: str, template_id: int | None, sealed: Mapping[str, Sealed]
    ) -> None:
        """Store the sealed values (none the job holds already); no template for a job
        that runs an application directly."""
        names = sorted(sealed)
        await self._db.execute(
            self._q("put_job_secrets"),
            job_id,
            company,
            template_id,
            names,
            [sealed[name].key_id for name in names],
            [sealed[name].nonce for name in names],
            [sealed[name].ciphertext for name in names],
        )

    async def sealed_job_secrets(self) -> list[SealedJobField]:
        found = await self._db.fetch(self._q("sealed_job_secrets"))
        return [SealedJobField(r["job_id"], r["name"], _sealed(r)) for r in found]

    async def reseal_job_secret(self, field: SealedJobField) -> None:
        sealed = field.sealed
        await self._db.execute(
            self._q("reseal_job_secret"),
            field.job_id,
            field.name,
            sealed.key_id,
            sealed.nonce,
            sealed.ciphertext,
        )

    async def keep_template_secrets(self, template_id: int, names: Collection[str]) -> None:
        await self._db.execute(self._q("keep_template_secrets"), template_id, sorted(names))

    async def put_template_secret(self, template_id: int, name: str, sealed: Sealed) -> None:
        await self._db.execute(
            self._q("put_template_secret"), template_id, name, sealed.key_id, sealed.nonce, sealed.ciphertext
        )

    async def sealed_template_secrets(self) -> list[SealedField]:
        found = await self._db.fetch(self._q("sealed_template_secrets"))
        return [SealedField(r["template_id"], r["name"], _sealed(r)) for r in found]

    async def reseal_template_secret(self, field: SealedField) -> None:
        sealed = field.sealed
        await self._db.execute(
            self._q("reseal_template_secret"),
            field.template_id,
            field.name,
            sealed.key_id,
            sealed.nonce,
            sealed.ciphertext,
        )

    async def sealed_by_key(self) -> list[tuple[str, str, int]]:
        """(key id, kind, how many) of every sealed value."""
        return [(r["key_id"], r["kind"], r["count"]) for r in await self._db.fetch(self._q("sealed_by_key"))]

    async def lock_secret_sealing(self, key: int) -> None:
        await self._db.execute(self._q("lock_secret_sealing"), key)

    async def set_template_env(self, template_id: int, env: Mapping[str, str]) -> None:
        await self._db.execute(self._q("set_template_env"), template_id, json.dumps(dict(env)))

    async def assign_credential(self, template_id: int, credential_id: int) -> None:
        await self._db.execute(self._q("assign_credential"), template_id, credential_id)

    async def unassign_credential(self, template_id: int, company_id: int, name: str) -> bool:
        """Whether the template used the company's credential set `name` (and now does not)."""
        found = await self._db.fetchval(self._q("unassign_credential"), template_id, company_id, name)
        return found is not None

    async def template_credentials(self, template_id: int) -> list[StoredCredential]:
        return [_stored(r) for r in await self._db.fetch(self._q("template_credentials"), template_id)]

    async def template_company(self, template_id: int) -> str | None:
        value = await self._db.fetchval(self._q("template_company"), template_id)
        return None if value is None else str(value)

    async def dead_letter_company(self, letter_id: int) -> str | None:
        value = await self._db.fetchval(self._q("dead_letter_company"), letter_id)
        return None if value is None else str(value)

    async def flow_run_company(self, run_id: str) -> str | None:
        value = await self._db.fetchval(self._q("flow_run_company"), run_id)
        return None if value is None else str(value)

    async def job_brief(self, job_id: str) -> tuple[str, int | None, bool] | None:
        row = await self._db.fetchrow(self._q("job_brief"), job_id)
        return None if row is None else (row["company"], row["template_id"], row["final"])

    async def await_replay(self, job_id: str, company: str) -> None:
        await self._db.execute(self._q("await_replay"), job_id, company)

    async def hold_job(self, job_id: str) -> tuple[str, bool] | None:
        """The company of the job and whether its dispatch is recorded, its row held until commit."""
        row = await self._db.fetchrow(self._q("hold_job"), job_id)
        return None if row is None else (row["company"], row["dispatched"])

    async def insert_artifact(self, upload: ArtifactUpload, content: bytes | None) -> ArtifactInfo:
        row = await self._db.fetchrow(
            self._q("insert_artifact"),
            upload.job_id,
            upload.attempt,
            upload.name,
            upload.path,
            upload.content_type,
            upload.size,
            upload.sha256,
            content,
            upload.over_limit,
            upload.missing,
            upload.note,
        )
        return _artifact(row)

    async def job_artifacts(
        self, job_id: str, offset: int, limit: int, after: tuple[int, str] | None = None
    ) -> list[ArtifactInfo]:
        """The job's artifacts by attempt and name, those after (attempt, name) `after`
        when given."""
        attempt, name = (None, None) if after is None else after
        found = await self._db.fetch(self._q("job_artifacts"), job_id, offset, limit, attempt, name)
        return [_artifact(r) for r in found]

    async def artifact_content(
        self, job_id: str, name: str, attempt: int | None = None
    ) -> tuple[ArtifactInfo, bytes | None] | None:
        row = await self._db.fetchrow(self._q("artifact_content"), job_id, name, attempt)
        if row is None:
            return None
        content = row["content"]
        return _artifact(row), None if content is None else bytes(content)

    async def standing(self, company: str, actor: str) -> Standing:
        row = await self._db.fetchrow(self._q("actor_roles"), company, actor)
        return Standing(set(row["roles"]), bool(row["closed"]), bool(row["known"]))

    async def actor_roles(self, company: str, actor: str) -> tuple[set[str], bool]:
        """The actor's roles in the company, and whether the company lists actors at all."""
        found = await self.standing(company, actor)
        return found.roles, found.closed

    async def grant_actor(self, company_id: int, actor: str, role: str) -> None:
        await self._db.execute(self._q("grant_actor"), company_id, actor, role)

    async def lock_actors(self, company_id: int) -> None:
        await self._db.execute(self._q("lock_actors"), company_id)

    async def revoke_actor(self, company_id: int, actor: str, role: str) -> bool:
        """Whether the actor held the role (and now does not)."""
        return await self._db.fetchval(self._q("revoke_actor"), company_id, actor, role) is not None

    async def recent_actors_without_role(self, company: str, since: timedelta, most: int) -> list[str]:
        """Actors of the company's newest `most` audit entries within `since` who hold no role in it."""
        found = await self._db.fetch(self._q("recent_actors_without_role"), company, since, most)
        return [r["actor"] for r in found]

    async def company_actors(self, company_id: int) -> list[ActorEntry]:
        found = await self._db.fetch(self._q("company_actors"), company_id)
        return [ActorEntry(actor=r["actor"], role=r["role"]) for r in found]

    async def write_audit(self, actor: str, action: str, company: str | None, detail: dict[str, Any]) -> None:
        await self._db.execute(self._q("write_audit"), actor, action, company, json.dumps(detail))

    async def audit_entries(
        self, company: str | None, limit: int, reader: Reader | None = None, before: int | None = None
    ) -> list[AuditEntry]:
        """Entries newest first, older than entry `before` when given; for a `reader`,
        only those of companies it may read and of no company (None: every entry, for
        the store's own use)."""
        actor, roles = (None, None) if reader is None else (reader.actor, reader.roles)
        found = await self._db.fetch(self._q("audit_entries"), company, limit, actor, roles, before)
        return [
            AuditEntry(
                id=r["id"],
                at=r["at"],
                actor=r["actor"],
                action=r["action"],
                company=r["company"],
                detail=json.loads(r["detail"]),
            )
            for r in found
        ]

    async def insert_token(
        self, actor: str, digest: bytes, admin: bool, note: str, created_by: str
    ) -> TokenInfo:
        row = await self._db.fetchrow(self._q("insert_token"), actor, digest, admin, note, created_by)
        return TokenInfo(**dict(row))

    async def token_by_hash(self, digest: bytes) -> TokenInfo | None:
        row = await self._db.fetchrow(self._q("token_by_hash"), digest)
        return None if row is None else TokenInfo(**dict(row))

    async def revoke_token(self, token_id: int) -> TokenInfo | None:
        row = await self._db.fetchrow(self._q("revoke_token"), token_id)
        return None if row is None else TokenInfo(**dict(row))

    async def list_tokens(
        self, actor: str | None, offset: int, limit: int, after: int | None = None
    ) -> list[TokenInfo]:
        """Tokens newest first, those older than token `after` when given."""
        found = await self._db.fetch(self._q("list_tokens"), actor, offset, limit, after)
        return [TokenInfo(**dict(r)) for r in found]
