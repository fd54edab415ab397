"""The store's API: one handler per operation of `contracts.api.OPERATIONS`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import structlog
from pydantic import BaseModel, ValidationError

from bus import Publisher, PublishFailed, TooLarge
from bus.api import answer_by, current_actor
from contracts import api
from contracts.api import ApiFailure
from contracts.dispatch import adhoc_job_id, job_message, keyed_job_id
from contracts.errors import describe
from contracts.models import ActiveTemplate, Application, Company, RunTemplate, TemplateSpec, cron_for
from contracts.multiflexi import AppFileError, parse_app
from contracts.records import JobRecord

from . import resolve
from .actors import audit, permit, reader, require, summary
from .board import BoardKeeper, active_template
from .credentials import Keyring
from .db import BAD_DATA, UNAVAILABLE, Deadline, deadline
from .flow_templates import not_for_flows, template_app_id
from .job_secrets import by_name, refused, seal_for_job
from .limits import check_name, check_size
from .masking import shown_template
from .pages import Key, cursor_instant, cursor_key, instant_value, keyed_page
from .queries import JobPlace, Queries
from .rows import TemplateRow
from .template_secrets import kept_sealed, seal_held, secret_values, store_sealed, to_store, without
from .tenant_queries import TenantQueries
from .writers import write_dispatches

log = structlog.get_logger("jetjobs.store")

Q = TypeVar("Q", bound=BaseModel)
Handler = Callable[[BaseModel], Awaitable[BaseModel]]


def _typed(op: str, request_type: type[Q], handler: Callable[[Q], Awaitable[BaseModel]]) -> Handler:
    """Adapt a handler of one request model to the bus's generic signature."""

    async def handle(request: BaseModel) -> BaseModel:
        if not isinstance(request, request_type):
            raise TypeError(f"{op}: expected {request_type.__name__}, got {type(request).__name__}")
        return await handler(request)

    return handle


def _answering(op: str, handler: Handler) -> Handler:
    async def handle(request: BaseModel) -> BaseModel:
        by = answer_by.get()
        limit = None if by is None else Deadline.until(by)
        bound = deadline.set(limit)
        try:
            return await handler(request)
        except BAD_DATA as error:
            raise ApiFailure(400, f"{op}: a value is out of range or cannot be stored ({error})") from None
        except ValidationError as error:  # stored before a check it now fails, e.g. a template's timeout
            raise ApiFailure(
                400, f"{op}: {describe(error)}; change it to a value that is allowed now"
            ) from None
        except UNAVAILABLE as error:
            raise _unavailable(op, error, limit) from None
        finally:
            deadline.reset(bound)

    return handle


def _unavailable(op: str, error: BaseException, limit: Deadline | None) -> ApiFailure:
    """The 503 of an outage; of a PostgreSQL too slow for the caller's deadline, one that
    says whether the request may have changed anything: only one that never sent a
    statement surely did not (a statement sent may be carried out once PostgreSQL answers,
    even one the store stopped waiting for)."""
    if limit is not None and not limit.left():
        log.warning("store.db_unavailable", operation=op, error="deadline", began=limit.began)
        waited = f"{op}: PostgreSQL did not answer within {limit.seconds:.1f} s"
        if not limit.began:
            return ApiFailure(503, f"{waited}; nothing was done: try again once it answers")
        return ApiFailure(
            503,
            f"{waited}; the store stopped waiting, but a change it had sent may still be made "
            "when PostgreSQL answers again: check before trying a change again",
        )
    log.warning("store.db_unavailable", operation=op, error=str(error) or type(error).__name__)
    return ApiFailure(503, f"{op}: the store cannot reach PostgreSQL right now; try again shortly")


def answering(handlers: Mapping[str, Handler]) -> dict[str, Handler]:
    """Every handler with database trouble turned into an answer the caller can act on:
    a 503 saying Postgres is out of reach or did not answer before the caller's deadline
    (and a warning, not a traceback), or a 400 for a value it cannot store. It wraps the
    token and actor checks too, which ask Postgres before the handler runs, so it must be
    the outermost wrapper; it also bounds every wait on Postgres by the deadline."""
    return {op: _answering(op, handler) for op, handler in handlers.items()}


def _conflict(spec: TemplateSpec, existing: int | None) -> ApiFailure:
    hint = (
        ""
        if existing is None
        else f" (template {existing}): change that one with `jetjobs template update {existing}`"
    )
    return ApiFailure(409, f"template '{spec.name}' already exists in company '{spec.company}'{hint}")


async def leave_credentials(conn: Any, template_id: int, old: str, new: Company) -> None:
    """Unassign from a template moved to company `new` the credential sets of its old company:
    that company keeps them and stays free to remove them, and no job of another company gets
    their values. Audited in the old company; the template's reply has no place to say it, so
    the store's log says it."""
    assert new.id is not None  # read from the table
    names = await Queries(conn).drop_foreign_credentials(template_id, new.id)
    for name in names:
        detail = {"template_id": template_id, "name": name, "moved_to": new.code}
        await audit(conn, "credential.unassign", old, detail)
    if names:
        log.warning(
            "template.credentials_left",
            template_id=template_id,
            company=old,
            moved_to=new.code,
            credentials=names,
        )


async def _may_change_all(conn: Any, app: Application, companies: set[str]) -> None:
    """A re-import changes what every company whose templates run the app runs: the caller
    must be allowed to change each of them (an admin of each company that lists actors).
    Checked before the transaction commits, so a refusal leaves the app as it was."""
    for company in sorted(companies):
        try:
            await require(conn, company, "change")
        except ApiFailure as failure:
            raise ApiFailure(
                failure.code,
                f"re-importing application {app.uuid} would change what company '{company}' runs: "
                f"{failure.message}",
            ) from None


def _app_key(app: Application) -> Key:
    """An application's place in `app.list`."""
    assert app.id is not None  # read from the table
    return (app.name, app.id)


def _older_than(after: str | None) -> JobPlace | None:
    """The place in the job list that cursor `after` holds (None for the first page)."""
    key = cursor_key("job.list", after, int, str)
    if key is None:
        return None
    assert after is not None  # a key came from it
    created, job_id = key
    return cursor_instant("job.list", after, created), job_id


class StoreApi:
    """Companies, applications, templates and jobs, read from and written to Postgres."""

    def __init__(
        self,
        pool: Any,
        publisher: Publisher,
        board: BoardKeeper,
        keyring: Keyring | None = None,
        created: Callable[[str], None] = lambda code: None,
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._board = board
        self._keyring = keyring
        self._created = created

    def handlers(self) -> dict[str, Handler]:
        """The handler of every operation, for `bus.ApiServer`."""
        return {
            "company.create": _typed("company.create", Company, self.company_create),
            "company.list": _typed("company.list", api.CompanyQuery, self.company_list),
            "app.import": _typed("app.import", api.AppImport, self.app_import),
            "app.list": _typed("app.list", api.AppQuery, self.app_list),
            "template.create": _typed("template.create", TemplateSpec, self.template_create),
            "template.update": _typed("template.update", api.TemplateUpdate, self.template_update),
            "template.get": _typed("template.get", api.TemplateRef, self.template_get),
            "template.list": _typed("template.list", api.TemplateQuery, self.template_list),
            "template.run": _typed("template.run", api.RunNow, self.template_run),
            "job.get": _typed("job.get", api.JobRef, self.job_get),
            "job.list": _typed("job.list", api.JobQuery, self.job_list),
        }

    async def company_create(self, request: Company) -> Company:
        check_name("company", request.name)
        created = await Queries(self._pool).insert_company(request)
        if created is None:
            raise ApiFailure(409, f"company '{request.code}' already exists")
        self._created(created.code)
        log.info("company.created", company=created.code)
        return created

    async def company_list(self, request: api.CompanyQuery) -> api.CompanyList:
        after = cursor_key("company.list", request.after, str)
        found = await Queries(self._pool).list_companies(
            request.company, reader(), request.offset, request.limit + 1, None if after is None else after[0]
        )
        page = keyed_page(found, request.limit, lambda company: (company.code,))
        return api.CompanyList(companies=page.items, more=page.more, next=page.next)

    async def app_import(self, request: api.AppImport) -> api.AppImported:
        """Store the application; its templates go on the board again once its artifacts
        and exit codes are stored too (`TenantApi`, which serves `app.import`)."""
        try:
            app, warnings = parse_app(request.document)
        except AppFileError as error:
            raise ApiFailure(400, f"{request.source or 'app document'}: {error}") from None
        check_name("application", app.name)
        check_size(f"application {app.name!r}", app)
        async with self._pool.acquire() as conn, conn.transaction():
            queries = Queries(conn)
            stored, created = await queries.upsert_app(app, request.document)
            assert stored.id is not None
            using = [] if created else await queries.templates(app_id=stored.id)
            await _may_change_all(conn, stored, {row.template.company for row in using})
            held = [row.template.id for row in using if secret_values(row.app, row.template.env)]
            if held:  # it declares a field secret now: its templates' values are sealed
                await seal_held(conn, self._keyring, held)
        log.info("app.imported", app=stored.uuid, created=created, warnings=len(warnings))
        return api.AppImported(app=stored, created=created, warnings=warnings)

    async def app_list(self, request: api.AppQuery) -> api.AppList:
        queries = Queries(self._pool)
        company_id = await resolve.company_id(queries, request.company)
        after = cursor_key("app.list", request.after, str, int)
        found = await queries.list_apps(company_id, request.offset, request.limit + 1, after)
        page = keyed_page(found, request.limit, _app_key)
        return api.AppList(apps=page.items, more=page.more, next=page.next)

    async def template_create(self, spec: TemplateSpec) -> RunTemplate:
        check_name("template", spec.name)
        check_size(f"template {spec.name!r}", spec)
        async with self._pool.acquire() as conn, conn.transaction():
            queries = Queries(conn)
            company = await resolve.company(queries, spec.company)
            app_id = await template_app_id(conn, spec)
            assert company.id is not None
            app = None if app_id is None else await queries.app_by_id(app_id)
            kept, sealed = to_store(spec, app, self._keyring, {})
            template_id = await queries.insert_template(kept, app_id, company.id)
            if template_id is None:
                raise _conflict(spec, await queries.template_id_by_name(company.id, spec.name))
            await store_sealed(conn, self._keyring, template_id, sealed, keep=())
            row = await resolve.template(queries, template_id)
        await self._board.refresh([template_id])
        log.info("template.created", template_id=template_id, company=spec.company)
        return shown_template(row)

    async def template_update(self, request: api.TemplateUpdate) -> RunTemplate:
        try:
            row = await self._update(request)
        except asyncpg.UniqueViolationError:  # a concurrent change took the name first
            raise ApiFailure(
                409, f"template {request.id}: its company already has a template of that name"
            ) from None
        await self._board.refresh([request.id])
        log.info("template.updated", template_id=request.id, company=row.template.company)
        return shown_template(row)

    async def _update(self, request: api.TemplateUpdate) -> TemplateRow:
        async with self._pool.acquire() as conn, conn.transaction():
            queries = Queries(conn)
            if not await queries.lock_template(request.id):
                raise resolve.unknown_template(request.id)
            current = await resolve.template(queries, request.id)
            spec = resolve.merged_spec(current.template, request)
            if spec.name != current.template.name:
                check_name("template", spec.name)
            check_size(f"template {request.id}", spec)
            company = await resolve.company(queries, spec.company)
            app_id = await template_app_id(conn, spec)
            assert company.id is not None
            existing = await queries.template_id_by_name(company.id, spec.name)
            if existing not in (None, request.id):
                raise _conflict(spec, existing)
            app = None if app_id is None else await queries.app_by_id(app_id)
            kept, sealed = to_store(spec, app, self._keyring, current.template.env)
            await queries.update_template(request.id, kept, app_id, company.id)
            if company.code != current.template.company:
                await leave_credentials(conn, request.id, current.template.company, company)
            await store_sealed(conn, self._keyring, request.id, sealed, kept_sealed(current, request))
            return await resolve.template(queries, request.id)

    async def _template(self, template_id: int) -> TemplateRow:
        return await resolve.template(Queries(self._pool), template_id, deleted=True)

    async def template_get(self, request: api.TemplateRef) -> RunTemplate:
        return shown_template(await self._template(request.id))

    async def template_list(self, request: api.TemplateQuery) -> api.TemplateList:
        rows = await Queries(self._pool).templates(
            company=request.company,
            reader=reader(),
            offset=request.offset,
            limit=request.limit + 1,
            deleted=request.deleted,
            after=cursor_key("template.list", request.after, str, str, int),
        )
        page = keyed_page(
            [shown_template(row) for row in rows], request.limit, lambda t: (t.company, t.name, t.id)
        )
        return api.TemplateList(templates=page.items, more=page.more, next=page.next)

    async def template_run(self, request: api.RunNow) -> api.JobQueued:
        """Run a template now. One statement finds all it needs, and the job is
        published before anything is written, so an executor can take it while
        this store records it (with the audit entry, in one transaction). Only the
        values it gives secret fields, if any, are written first (`job_secrets`)."""
        actor = current_actor.get()
        found = await TenantQueries(self._pool).template_to_run(request.id, actor)
        if found is None:
            raise resolve.unknown_template(request.id)
        row = found.row
        company = row.template.company
        permit(actor, company, "change", found.roles, found.closed)
        job_id, recorded = (
            (adhoc_job_id(), False)
            if request.key is None
            else await self._keyed(request.id, request.key, company)
        )
        if recorded:
            return self._queued_before(job_id, company, request.id)  # even if it could not run now
        if row.template.deleted_at is not None:
            raise resolve.deleted_template(row.template)
        not_for_flows(request.id, row.template.flow, company, "`job run` runs jobs only")
        if not row.company_enabled:
            raise ApiFailure(409, f"company '{company}' is disabled: its templates cannot run")
        view = active_template(row, cron_for(row.template.interv, row.template.cron) or "", found.extras)
        secret = secret_values(row.app, request.env)
        if secret:  # kept even if the publish below fails: its ack may be what was lost
            await self._seal_for_run(view, job_id, secret)
        now = datetime.now(UTC)
        message = job_message(
            by_name(view, secret) if secret else view,
            job_id=job_id,
            slot=now,
            now=now,
            launched_by=request.launched_by,
            env_overrides=without(request.env, secret),
            timeouts=request.timeouts,
        )
        try:
            [duplicate] = await self._publisher.dispatch([message])
        except TooLarge as error:
            raise ApiFailure(
                413,
                f"could not queue template {request.id}: {error}: give the run shorter env values "
                "(a value the command line uses counts twice, in the arguments and in the env)",
            ) from None
        except (PublishFailed, TimeoutError) as error:
            reason = str(error) or "NATS did not answer in time"
            raise ApiFailure(503, f"could not queue template {request.id}: {reason}; try again") from None
        if duplicate:  # the same key moments ago: that request records the job
            return self._queued_before(job_id, company, request.id)
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await write_dispatches(Queries(conn), [message])
                await audit(conn, "template.run", company, summary(request))
        except UNAVAILABLE as error:
            # Queued all the same: answering an error would invite a retry that runs it
            # twice. The dispatch projection records the job from the stream; the audit
            # entry that could not be written is kept in this line.
            log.warning(
                "job.record_deferred",
                job_id=message.job_id,
                company=company,
                actor=actor,
                audit={"action": "template.run", **summary(request)},
                error=str(error) or type(error).__name__,
            )
        log.info("job.queued", job_id=message.job_id, company=company, template_id=request.id)
        return api.JobQueued(job_id=message.job_id, company=company)

    async def _seal_for_run(self, view: ActiveTemplate, job_id: str, values: dict[str, str]) -> None:
        """Seal the run's values of secret fields for its job, committed before its message
        is published (the job is recorded after it): an executor may ask for them at once."""
        if self._keyring is None:
            raise refused(values)
        await seal_for_job(self._pool, self._keyring, job_id, view, values)

    async def _keyed(self, template_id: int, key: str, company: str) -> tuple[str, bool]:
        """The job id of the template's run with `key` in `company`, and whether that run is
        recorded already. The key's own id, unless it names another company's run of this
        template (it moved since; a row events alone made names no template): then the id
        the key has in its new company, whose run it is even once the old one is pruned."""
        first = keyed_job_id(template_id, key)
        brief = await TenantQueries(self._pool).job_brief(first)
        if brief is not None and brief[0] == company:
            return first, True
        moved = keyed_job_id(template_id, key, moved_to=company)
        if await self._recorded_in(moved, company):
            return moved, True
        moved_away = brief is not None and brief[1] == template_id
        return (moved if moved_away else first), False

    async def _recorded_in(self, job_id: str, company: str) -> bool:
        """Whether the job is recorded for this company (a row another company's events
        made is taken back by the dispatch instead)."""
        brief = await TenantQueries(self._pool).job_brief(job_id)
        return brief is not None and brief[0] == company

    @staticmethod
    def _queued_before(job_id: str, company: str, template_id: int) -> api.JobQueued:
        """The reply to a run-now whose key an earlier request used: its job, not run again."""
        log.info("job.queued_before", job_id=job_id, company=company, template_id=template_id)
        return api.JobQueued(job_id=job_id, company=company, existing=True)

    async def job_get(self, request: api.JobRef) -> JobRecord:
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            queries = Queries(conn)
            job = await queries.job_by_id(request.id)
            if job is None:
                raise ApiFailure(404, f"unknown job '{request.id}': see `jetjobs job list`")
            attempts = await queries.job_attempts(request.id)
        return job.model_copy(update={"attempts": attempts})

    async def job_list(self, request: api.JobQuery) -> api.JobList:
        """A page of jobs, cut to fit one message; its cursor holds the last job's place
        (`created_at`, id), so the next page follows it whatever was recorded meanwhile."""
        queries = Queries(self._pool)
        owner = await resolve.template_filter(queries, request.template_id)
        if owner is not None:  # another company's template is refused as `template.get` refuses it
            await require(self._pool, owner, "read")
        found = await queries.list_jobs(
            request.company,
            request.template_id,
            request.status,
            request.limit + 1,
            reader(),
            _older_than(request.after),
        )
        places = {job.id: (instant_value(created), job_id) for job, (created, job_id) in found}
        page = keyed_page([job for job, _ in found], request.limit, lambda job: places[job.id])
        return api.JobList(jobs=page.items, more=page.more, next=page.next)
