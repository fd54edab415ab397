"""The tenant API: credential sets, just-in-time secrets, layered environments,
application export and actors. Every handler checks the calling actor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel

from bus.api import current_actor
from contracts import api
from contracts import tenants as t
from contracts.api import ApiFailure
from contracts.multiflexi import AppFileError, parse_app

from . import layering, resolve
from .actors import (
    RECENT,
    RECENT_ENTRIES,
    audit,
    check_admin_left,
    check_closing,
    closing_warnings,
    guard_all,
    opened_warnings,
    reader,
    require,
    role_not_held,
)
from .api import _typed, answering
from .artifacts import ArtifactApi
from .board import BoardKeeper
from .credentials import Keyring, UndecryptableError, no_key
from .pages import fit
from .queries import Queries
from .tenant_queries import SealedField, SealedJobField, StoredCredential, TemplateName, TenantQueries
from .tokens import Authenticator, TokenApi, TokenCache

log = structlog.get_logger("jetjobs.store")

Handler = Callable[[BaseModel], Awaitable[BaseModel]]
F = TypeVar("F", SealedField, SealedJobField)

NO_KEY = no_key("credentials")


IN_USE_SHOWN = 10
"""The most templates, or jobs, a refused credential delete names."""


class TenantApi:
    """Credentials, secrets, environments, export and actors, over Postgres."""

    def __init__(self, pool: Any, board: BoardKeeper, keyring: Keyring | None) -> None:
        self._pool = pool
        self._board = board
        self._keyring = keyring

    def handlers(self, core_import: Handler) -> dict[str, Handler]:
        """The tenant operations' handlers; `app.import` is the core one plus extras."""
        ops: dict[str, tuple[type[BaseModel], Callable[[Any], Awaitable[BaseModel]]]] = {
            "credential.set": (t.CredentialSet, self.credential_set),
            "credential.list": (t.CredentialFilter, self.credential_list),
            "credential.assign": (t.CredentialAssign, self.credential_assign),
            "credential.unassign": (t.CredentialAssign, self.credential_unassign),
            "credential.delete": (t.CredentialRef, self.credential_delete),
            "secrets.fetch": (t.SecretsRequest, self.secrets_fetch),
            "template.env": (api.TemplateRef, self.template_env),
            "app.export": (t.AppRef, self.app_export),
            "actor.grant": (t.ActorGrant, self.actor_grant),
            "actor.revoke": (t.ActorRevoke, self.actor_revoke),
            "actor.list": (t.CredentialFilter, self.actor_list),
            "audit.list": (t.AuditQuery, self.audit_list),
        }
        handlers = {op: _typed(op, kind, fn) for op, (kind, fn) in ops.items()}
        handlers["app.import"] = self._with_extras(core_import)
        return handlers

    def _keys(self) -> Keyring:
        if self._keyring is None:
            raise ApiFailure(503, NO_KEY)
        return self._keyring

    async def _company_id(self, code: str) -> int:
        found = await resolve.company(Queries(self._pool), code)
        assert found.id is not None
        return found.id

    async def _refresh_company(self, company: str) -> None:
        rows = await Queries(self._pool).templates(company=company)
        await self._board.refresh([row.template.id for row in rows])

    async def credential_set(self, request: t.CredentialSet) -> t.CredentialInfo:
        company_id = await self._company_id(request.company)
        sealed = self._keys().seal(request.company, request.name, request.values)
        fields = sorted(request.values)
        async with self._pool.acquire() as conn, conn.transaction():
            updated = await TenantQueries(conn).upsert_credential(
                company_id, request.name, request.kind, fields, sealed
            )
            await audit(conn, "credential.set", request.company, {"name": request.name, "fields": fields})
        await self._refresh_company(request.company)
        log.info("credential.set", company=request.company, name=request.name, fields=len(fields))
        return t.CredentialInfo(
            company=request.company, name=request.name, kind=request.kind, fields=fields, updated_at=updated
        )

    async def credential_list(self, request: t.CredentialFilter) -> t.CredentialList:
        company_id = await self._company_id(request.company)
        found = await TenantQueries(self._pool).company_credentials(company_id, request.company)
        return t.CredentialList(credentials=found)

    async def _template_company(self, template_id: int) -> str:
        company = await TenantQueries(self._pool).template_company(template_id)
        if company is None:
            raise resolve.unknown_template(template_id)
        return company

    async def credential_assign(self, request: t.CredentialAssign) -> t.Assigned:
        company = (await resolve.template(Queries(self._pool), request.template_id)).template.company
        company_id = await self._company_id(company)
        async with self._pool.acquire() as conn, conn.transaction():
            queries = TenantQueries(conn)
            credential_id = await queries.credential_id(company_id, request.name)
            if credential_id is None:
                raise ApiFailure(
                    404,
                    f"company '{company}' has no credential set '{request.name}': "
                    f"create it with `jetjobs credentials set {company} {request.name} KEY=VALUE…`",
                )
            await queries.assign_credential(request.template_id, credential_id)
            await audit(conn, "credential.assign", company, request.model_dump())
            names = [c.name for c in await queries.template_credentials(request.template_id)]
        await self._board.refresh([request.template_id])
        return t.Assigned(template_id=request.template_id, credentials=names)

    async def credential_unassign(self, request: t.CredentialAssign) -> t.Assigned:
        """Stop a template using a set: its next jobs run without the set's values."""
        company = (await resolve.template(Queries(self._pool), request.template_id)).template.company
        company_id = await self._company_id(company)
        async with self._pool.acquire() as conn, conn.transaction():
            queries = TenantQueries(conn)
            used = await queries.unassign_credential(request.template_id, company_id, request.name)
            names = [c.name for c in await queries.template_credentials(request.template_id)]
            if not used:
                raise ApiFailure(
                    404,
                    f"template {request.template_id} does not use credential set '{request.name}' "
                    f"(it uses {', '.join(names) or 'none'}): `jetjobs template env "
                    f"{request.template_id}` shows where each variable comes from",
                )
            await audit(conn, "credential.unassign", company, request.model_dump())
        await self._board.refresh([request.template_id])
        return t.Assigned(template_id=request.template_id, credentials=names)

    async def credential_delete(self, request: t.CredentialRef) -> t.CredentialInfo:
        """Delete a set no live template uses and no unfinished job needs: one in use is
        refused rather than taken from under templates whose next runs, or jobs (of deleted
        templates too) whose next attempts, would then miss its variables."""
        company, name = request.company, request.name
        company_id = await self._company_id(company)
        async with self._pool.acquire() as conn, conn.transaction():
            queries = TenantQueries(conn)
            found = await queries.lock_credential(company_id, company, name)
            if found is None:
                raise ApiFailure(
                    404,
                    f"company '{company}' has no credential set '{name}': "
                    f"`jetjobs credentials list {company}` lists its sets",
                )
            credential_id, info = found
            users = await queries.credential_users(credential_id)
            if users:
                raise ApiFailure(409, in_use(company, name, users))
            jobs = await queries.credential_jobs(credential_id, IN_USE_SHOWN + 1)
            if jobs:
                raise ApiFailure(409, needed_by_jobs(company, name, jobs))
            await queries.delete_credential(credential_id)
            await audit(conn, "credential.delete", company, {"name": name, "fields": info.fields})
        log.info("credential.deleted", company=company, name=name)
        return info

    async def _check_job(self, request: t.SecretsRequest) -> None:
        queries = TenantQueries(self._pool)
        brief = await queries.job_brief(request.job_id)
        if brief is not None and brief[2]:  # ended, unless a replay of it is reopening it now
            await queries.await_replay(request.job_id, brief[0])
            brief = await queries.job_brief(request.job_id)
        if brief is None:
            return  # not projected yet: the template's company was checked, or without one the rows name it
        company, template_id, final = brief
        if company != request.company:
            if not await self._dispatched(queries, request.job_id):
                return  # a row another company's early events made: the job's dispatch takes it back
            brief = await queries.job_brief(request.job_id)  # the dispatch may have taken it back meanwhile
            if brief is None:
                return
            company, template_id, final = brief
        if company != request.company or template_id not in (None, request.template_id):
            raise ApiFailure(403, _not_its_job(request))
        if final:
            raise ApiFailure(409, f"job {request.job_id} has ended: its secrets are no longer served")

    @staticmethod
    async def _dispatched(queries: TenantQueries, job_id: str) -> bool:
        held = await queries.hold_job(job_id)
        return held is not None and held[1]

    async def secrets_fetch(self, request: t.SecretsRequest) -> t.SecretsReply:
        company = request.company
        if request.template_id is not None and await self._template_company(request.template_id) != company:
            raise ApiFailure(403, f"template {request.template_id} is not a template of company '{company}'")
        actor = await require(self._pool, company, "execute", known=True)
        await self._check_job(request)
        values = await self._values(request)
        wanted = {name: values[name] for name in request.names if name in values}
        await audit(self._pool, "secrets.fetch", company, {"job_id": request.job_id, "names": sorted(wanted)})
        log.info("secrets.served", job_id=request.job_id, company=company, actor=actor, names=len(wanted))
        return t.SecretsReply(values=wanted)

    async def _values(self, request: t.SecretsRequest) -> dict[str, str]:
        """The values the job may be given: a job that runs an application directly has
        only those sealed for it, its company's (the rows name it, as a template does)."""
        queries = TenantQueries(self._pool)
        if request.template_id is None:
            return self._open_run(
                await queries.app_job_secret_values(request.job_id, request.company, request.names)
            )
        stored = await queries.template_credentials(request.template_id)
        own = await queries.own_secret_values(
            request.template_id, request.job_id, request.company, request.names
        )
        # the template's own win over its credentials, and the run's over both
        return {**self._open_all(stored), **self._open_own(own.template), **self._open_run(own.job)}

    def _open_all(self, stored: list[StoredCredential]) -> dict[str, str]:
        if not stored:
            return {}
        keys = self._keys()
        values: dict[str, str] = {}
        try:
            for credential in stored:
                values.update(keys.open(credential.company, credential.name, credential.sealed))
        except UndecryptableError as error:
            raise ApiFailure(500, str(error)) from None
        return values

    def _open_own(self, sealed: list[SealedField]) -> dict[str, str]:
        """The template's own secret values, sealed when it was saved."""
        return self._opened(sealed, lambda keys, f: keys.open_field(f.template_id, f.name, f.sealed))

    def _open_run(self, sealed: list[SealedJobField]) -> dict[str, str]:
        """The values the job's run gave, sealed for that job when it was queued."""
        return self._opened(sealed, lambda keys, f: keys.open_job_field(f.job_id, f.name, f.sealed))

    def _opened(self, sealed: Sequence[F], opened: Callable[[Keyring, F], str]) -> dict[str, str]:
        if not sealed:
            return {}
        keys = self._keys()
        try:
            return {field.name: opened(keys, field) for field in sealed}
        except UndecryptableError as error:
            raise ApiFailure(500, str(error)) from None

    async def template_env(self, request: api.TemplateRef) -> t.TemplateEnv:
        row = await resolve.template(Queries(self._pool), request.id, deleted=True)
        if row.app is None:
            raise ApiFailure(
                409, f"template {request.id} runs flow '{row.template.flow}': its nodes have the env"
            )
        stored = await TenantQueries(self._pool).template_credentials(request.id)
        provided = {field: c.name for c in stored for field in c.fields}
        return layering.template_env(request.id, row.app, row.template.env, provided, row.sealed)

    async def app_export(self, request: t.AppRef) -> t.AppDocument:
        """The app file as it was imported (so nothing jetjobs does not use is lost), named
        by its uuid, which a file without one was given at import."""
        app = await resolve.application(Queries(self._pool), request.id)
        assert app.id is not None
        document = await TenantQueries(self._pool).app_document(app.id)
        return t.AppDocument(document={**document, "uuid": app.uuid})

    def _with_extras(self, core_import: Handler) -> Handler:
        async def handle(request: BaseModel) -> BaseModel:
            reply = await core_import(request)
            assert isinstance(request, api.AppImport) and isinstance(reply, api.AppImported)
            try:
                parsed, _ = parse_app(request.document)
            except AppFileError as error:  # the core import accepted it, so this cannot happen
                raise ApiFailure(400, f"{request.source or 'app document'}: {error}") from None
            assert reply.app.id is not None
            await TenantQueries(self._pool).set_app_extras(reply.app.id, parsed.artifacts, parsed.exit_codes)
            using = await Queries(self._pool).templates(app_id=reply.app.id)
            await self._board.refresh([row.template.id for row in using])
            app = reply.app.model_copy(
                update={"artifacts": parsed.artifacts, "exit_codes": parsed.exit_codes}
            )
            return reply.model_copy(update={"app": app})

        return handle

    async def actor_grant(self, request: t.ActorGrant) -> t.ActorList:
        """Grant a role; the grant that closes an open company says whom that locks out."""
        company = request.company
        company_id = await self._company_id(company)
        locked_out: list[str] = []
        async with self._pool.acquire() as conn, conn.transaction():
            queries = TenantQueries(conn)
            await queries.lock_actors(company_id)
            closing = not await queries.company_actors(company_id)
            if closing:
                check_closing(request, current_actor.get())
            await queries.grant_actor(company_id, request.actor, request.role)
            await audit(conn, "actor.grant", company, request.model_dump())
            actors = await queries.company_actors(company_id)
            if closing:  # after the audit entry: a caller that closed itself out is named too
                locked_out = await queries.recent_actors_without_role(company, RECENT, RECENT_ENTRIES)
        if not closing:
            return t.ActorList(company=company, actors=actors)
        log.warning("actor.company_closed", company=company, admin=request.actor, locked_out=locked_out)
        warnings = closing_warnings(company, actors, locked_out)
        return t.ActorList(company=company, actors=actors, locked_out=locked_out, warnings=warnings)

    async def actor_revoke(self, request: t.ActorRevoke) -> t.ActorList:
        """Take a role away, never the last admin of a company that lists actors."""
        company_id = await self._company_id(request.company)
        async with self._pool.acquire() as conn, conn.transaction():
            queries = TenantQueries(conn)
            await queries.lock_actors(company_id)
            if not await queries.revoke_actor(company_id, request.actor, request.role):
                roles, _ = await queries.actor_roles(request.company, request.actor)
                raise role_not_held(request, roles)
            actors = await queries.company_actors(company_id)
            check_admin_left(request, actors)  # refused: the transaction takes the revoke back
            await audit(conn, "actor.revoke", request.company, request.model_dump())
        warnings = opened_warnings(request.company, actors)
        if warnings:
            log.warning("actor.company_opened", company=request.company)
        return t.ActorList(company=request.company, actors=actors, warnings=warnings)

    async def actor_list(self, request: t.CredentialFilter) -> t.ActorList:
        company_id = await self._company_id(request.company)
        actors = await TenantQueries(self._pool).company_actors(company_id)
        return t.ActorList(company=request.company, actors=actors)

    async def audit_list(self, request: t.AuditQuery) -> t.AuditList:
        found = await TenantQueries(self._pool).audit_entries(
            request.company, request.limit + 1, reader(), request.before
        )
        entries, more = fit(found, request.limit)
        return t.AuditList(entries=entries, more=more)


def in_use(company: str, name: str, users: list[TemplateName]) -> str:
    """Why a credential set cannot be deleted, naming (the first few of) its templates."""
    shown = ", ".join(f"{user.id} ({user.name})" for user in users[:IN_USE_SHOWN])
    more = f" and {len(users) - IN_USE_SHOWN} more" if len(users) > IN_USE_SHOWN else ""
    templates = "template" if len(users) == 1 else "templates"
    return (
        f"credential set {company}/{name} is used by {templates} {shown}{more}: unassign it from each "
        f"first (`jetjobs credentials unassign TEMPLATE {name}`)"
    )


def needed_by_jobs(company: str, name: str, jobs: list[tuple[str, int]]) -> str:
    """Why a credential set cannot be deleted yet, naming (the first few of) its unfinished jobs."""
    shown = ", ".join(f"{job_id} (template {template_id})" for job_id, template_id in jobs[:IN_USE_SHOWN])
    more = " and more" if len(jobs) > IN_USE_SHOWN else ""
    noun, them = ("job", "it") if len(jobs) == 1 else ("jobs", "them")
    return (
        f"credential set {company}/{name} is still needed by unfinished {noun} {shown}{more}, whose "
        f"attempts fetch its values: wait for {them} to end (`jetjobs job show JOB`), "
        f"or cancel {them} (`jetjobs job cancel JOB`), then delete it again"
    )


def with_tenants(
    pool: Any,
    board: BoardKeeper,
    keyring: Keyring | None,
    core: dict[str, Handler],
    require_tokens: bool = False,
) -> dict[str, Handler]:
    """The core, tenant, artifact and token handlers, each guarded by its rule in
    `store.actors.RULES`, behind token authentication, and answering a Postgres
    outage with a 503 whichever of these layers met it."""
    tenants = TenantApi(pool, board, keyring).handlers(core["app.import"])
    cache = TokenCache()
    handlers = {**core, **tenants, **ArtifactApi(pool).handlers(), **TokenApi(pool, cache).handlers()}
    return answering(Authenticator(pool, require_tokens, cache).wrap(guard_all(pool, handlers)))


def _not_its_job(request: t.SecretsRequest) -> str:
    """Why a job's secrets are refused to a request naming another template or company."""
    if request.template_id is None:
        return (
            f"job {request.job_id} is not a job of company '{request.company}' that runs an application "
            "directly (a flow's `app:` node)"
        )
    return f"job {request.job_id} is not a job of template {request.template_id}"
