"""The one-shot commands: each talks to the store's API over NATS."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bus import ApiClient, Bus, job_events
from bus.watch import following
from contracts import api
from contracts import subjects as s
from contracts.enums import Status
from contracts.errors import describe
from contracts.models import Application, Company, RunTemplate, TemplateSpec
from contracts.multiflexi import AppFileError, parse_app
from contracts.records import JobRecord
from contracts.tenants import TemplateEnv

from . import render, settings
from .pages import every_page, every_page_after
from .progress import progress


class CommandError(Exception):
    """A command cannot do what was asked; the message says why and what to do."""


@dataclass
class Session:
    """An API client plus JetStream access, for one command."""

    api: ApiClient
    bus: Bus
    as_json: bool

    def show(self, value: Any, human: str) -> None:
        show(self.as_json, value, human)


def show(as_json: bool, value: Any, human: str) -> None:
    """Print `value` as JSON for scripts (`--json`), else `human` for people."""
    print(render.as_json(value) if as_json else human)


def default_actor() -> str:
    """Who the command acts as: JETJOBS_ACTOR, else the login name; either must be
    UTF-8 text, or no request can carry it."""
    named = os.environ.get("JETJOBS_ACTOR")
    if named:
        return _sendable_actor(named, "JETJOBS_ACTOR")
    try:
        login = getpass.getuser()
    except (OSError, KeyError):
        return "user:unknown"
    return _sendable_actor(f"user:{login}", "the login name (USER)")


def _sendable_actor(actor: str, given: str) -> str:
    if not settings.is_utf8(actor):
        raise CommandError(f"{given} is not valid UTF-8 text: set JETJOBS_ACTOR to a UTF-8 name")
    return actor


@asynccontextmanager
async def session(
    nats_url: str, as_json: bool, actor: str | None = None, token: str | None = None
) -> AsyncIterator[Session]:
    """Connect for the length of one command; API calls are made as `actor`, proven by `token`."""
    bus = await Bus.attach(nats_url, "jetjobs-cli")
    try:
        client = ApiClient(bus.nc, actor=actor or default_actor(), token=token)
        yield Session(client, bus, as_json)
    finally:
        await bus.nc.close()


def spec_from(values: dict[str, Any]) -> TemplateSpec:
    """Validate a template locally so a typo is reported before any call."""
    try:
        return TemplateSpec.model_validate(values)
    except ValidationError as error:
        raise CommandError(describe(error)) from None


async def company_create(ses: Session, company: Company) -> None:
    created = await ses.api.call("company.create", company, Company)
    ses.show(created, f"created company {created.code} ({created.name})")


async def known_company(ses: Session, code: str) -> None:
    """The store's "unknown company" refusal (as every command gives it) before anything is done."""
    await ses.api.call("company.list", api.CompanyFilter(company=code), api.CompanyList)


async def company_list(ses: Session) -> None:
    async def page(after: str | None) -> tuple[list[Company], str | None]:
        reply = await ses.api.call("company.list", api.CompanyQuery(after=after), api.CompanyList)
        return reply.companies, reply.next

    companies = await every_page_after(page)
    rows = [(c.code, c.name, c.enabled, c.paused) for c in companies]
    ses.show(companies, render.table(rows, ["code", "name", "enabled", "paused"]))


def read_app_file(path: Path) -> dict[str, Any]:
    """The JSON document in `path`, checked locally so errors name the file."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise CommandError(f"{path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise CommandError(f"{path}: not UTF-8 text: an app file is UTF-8 JSON") from None
    except ValueError as error:
        raise CommandError(f"{path}: not valid JSON: {error}") from None
    except RecursionError:
        raise CommandError(f"{path}: its JSON nests too deeply to read: flatten it") from None
    try:
        parse_app(document)
    except (AppFileError, ValidationError) as error:
        detail = describe(error) if isinstance(error, ValidationError) else str(error)
        raise CommandError(f"{path}: {detail}") from None
    return document  # type: ignore[no-any-return]


def _imported_text(reply: api.AppImported) -> str:
    verb = "imported" if reply.created else "updated"
    return "\n".join(
        [f"{verb} {reply.app.name} as app {reply.app.id} ({reply.app.uuid})"]
        + [f"  warning: {w}" for w in reply.warnings]
    )


async def app_import(ses: Session, documents: Sequence[tuple[Path, dict[str, Any]]]) -> None:
    """Import app documents read (and checked) by `read_app_file`; with `--json`, one
    reply object for one file, a JSON array of them for several."""
    replies = []
    with progress("importing apps", len(documents)) as tick:
        for path, document in documents:
            reply = await ses.api.call(
                "app.import", api.AppImport(document=document, source=str(path)), api.AppImported
            )
            if not ses.as_json:
                print(_imported_text(reply))
            replies.append(reply)
            tick()
    if ses.as_json:
        print(render.as_json(replies[0] if len(replies) == 1 else replies))


async def app_list(ses: Session) -> None:
    async def page(after: str | None) -> tuple[list[Application], str | None]:
        reply = await ses.api.call("app.list", api.AppQuery(after=after), api.AppList)
        return reply.apps, reply.next

    apps = await every_page_after(page)
    rows = [(a.id, a.name, a.executable, a.uuid) for a in apps]
    ses.show(apps, render.table(rows, ["id", "name", "executable", "uuid"]))


def _template_rows(templates: Sequence[RunTemplate]) -> str:
    rows = [
        (
            t.id,
            t.name,
            t.company,
            t.app or f"flow {t.flow}",
            t.cron or t.interv.value,
            t.timezone,
            t.pool,
            "deleted" if t.deleted_at is not None else "paused" if t.active and t.paused else t.active,
        )
        for t in templates
    ]
    return render.table(rows, ["id", "name", "company", "app", "schedule", "timezone", "pool", "active"])


async def template_create(ses: Session, values: dict[str, Any]) -> None:
    created = await ses.api.call("template.create", spec_from(values), RunTemplate)
    ses.show(created, f"created template {created.id} ({created.name})\n" + _template_rows([created]))


async def template_update(ses: Session, request: api.TemplateUpdate) -> None:
    if not (request.changes or request.set_env or request.unset_env):
        raise CommandError("nothing to change: pass at least one option, e.g. --active false")
    updated = await ses.api.call("template.update", request, RunTemplate)
    await _show_template(ses, updated, f"updated template {updated.id}\n")


async def every_template(client: ApiClient, company: str | None, deleted: bool) -> list[RunTemplate]:
    """The live (or the deleted) templates, of one company or all, every page."""

    async def page(after: str | None) -> tuple[list[RunTemplate], str | None]:
        query = api.TemplateQuery(company=company, after=after, deleted=deleted)
        reply = await client.call("template.list", query, api.TemplateList)
        return reply.templates, reply.next

    return await every_page_after(page)


async def template_list(ses: Session, company: str | None, deleted: bool) -> None:
    templates = await every_template(ses.api, company, deleted)
    ses.show(templates, _template_rows(templates))


async def template_show(ses: Session, template_id: int) -> None:
    await _show_template(
        ses, await ses.api.call("template.get", api.TemplateRef(id=template_id), RunTemplate)
    )


async def _show_template(ses: Session, template: RunTemplate, head: str = "") -> None:
    """JSON: the template; for people: `head`, then the whole template."""
    human = "" if ses.as_json else head + render.template_detail(template, await _env_of(ses, template))
    ses.show(template, human)


async def _env_of(ses: Session, template: RunTemplate) -> TemplateEnv | None:
    """An app template's merged env: its secrets masked, its credential sets named
    (a flow template's env is not merged here: each node merges its app's)."""
    if template.flow is not None:
        return None
    return await ses.api.call("template.env", api.TemplateRef(id=template.id), TemplateEnv)


async def job_show(ses: Session, job_id: str) -> None:
    job = await ses.api.call("job.get", api.JobRef(id=job_id), JobRecord)
    ses.show(job, render.job_detail(job))


async def job_list(ses: Session, query: api.JobQuery) -> None:
    """The newest `query.limit` jobs (fewer when no more match), read a page at a time:
    the store cuts a page short when more jobs would not fit in one NATS message."""
    after = query.after

    async def page(got: list[JobRecord]) -> tuple[list[JobRecord], bool]:
        nonlocal after
        asked = query.model_copy(update={"limit": query.limit - len(got), "after": after})
        reply = await ses.api.call("job.list", asked, api.JobList)
        after = reply.next
        return reply.jobs, reply.more

    jobs = await every_page(page, query.limit)
    rows = [
        (j.id, j.company, j.template_id, render.outcome(j), j.attempt, j.scheduled_at, render.duration(j))
        for j in jobs
    ]
    ses.show(
        jobs, render.table(rows, ["job", "company", "template", "status", "attempt", "scheduled", "took"])
    )


async def _final_event_of(ses: Session, queued: api.JobQueued) -> None:
    async for event in job_events(ses.bus.js, s.events_subject(queued.company, queued.job_id)):
        if event.final:
            return


async def _recorded(ses: Session, job_id: str, patience: float = 15.0) -> JobRecord:
    """The job once the store has recorded its final outcome (it may lag the bus)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while True:
        job = await ses.api.call("job.get", api.JobRef(id=job_id), JobRecord)
        if job.final or loop.time() > deadline:
            return job
        await asyncio.sleep(0.1)


def exit_status(status: Status) -> int:
    """How a command that followed a job to its end exits: 0 when it succeeded
    (`processed`), 1 when it did not (any error, cancelled included)."""
    return 0 if status is Status.PROCESSED else 1


def _queued_line(queued: api.JobQueued, key: str | None) -> str:
    if queued.existing:
        return (
            f"job {queued.job_id} of company {queued.company} was queued before with key {key!r}: "
            "not run again (use another key for another run)"
        )
    return f"queued job {queued.job_id} for company {queued.company}"


LEAVING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Besides Ctrl-C (which `asyncio.run` turns into a cancel), what ends a waiting `job run`."""


@contextmanager
def _told_if_left(job_id: str) -> Iterator[None]:
    """Ctrl-C, SIGTERM or SIGHUP while waiting leave the job queued or running: say
    so and how to stop it, on stderr (stdout stays clean for --json); exit as the
    signal asks (Ctrl-C: 130, the others 128 + their number)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    caught: list[int] = []

    def leave(signum: int) -> None:
        caught.append(signum)
        if task is not None:
            task.cancel()

    for signum in LEAVING_SIGNALS:
        loop.add_signal_handler(signum, leave, signum)
    try:
        yield
    except (asyncio.CancelledError, KeyboardInterrupt):
        print(
            f"jetjobs: job {job_id} is still queued or running; stop it with `jetjobs job cancel {job_id}`",
            file=sys.stderr,
        )
        if caught:
            raise SystemExit(128 + caught[0]) from None
        raise
    finally:
        for signum in LEAVING_SIGNALS:
            loop.remove_signal_handler(signum)


async def job_run(ses: Session, request: api.RunNow, wait: float | None) -> int:
    """Queue a run; with `wait`, follow it to its outcome (exit 1 if it failed),
    riding out a short NATS outage meanwhile (`following`)."""
    queued = await ses.api.call("template.run", request, api.JobQueued)
    if wait is None:
        ses.show(queued, _queued_line(queued, request.key))
        return 0
    with following(ses.bus.nc):
        try:
            with _told_if_left(queued.job_id):
                await asyncio.wait_for(_final_event_of(ses, queued), timeout=wait)
        except TimeoutError:
            raise CommandError(
                f"job {queued.job_id} has no outcome after {wait:g} s; "
                f"follow it with `jetjobs job show {queued.job_id}`"
            ) from None
        job = await _recorded(ses, queued.job_id)
    ses.show(job, render.job_detail(job))
    return exit_status(job.status)
