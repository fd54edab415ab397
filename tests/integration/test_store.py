"""The store's API and templates board against real NATS and PostgreSQL.

Also home of the small harness the other `test_store_*` files share.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import pytest
from pydantic import BaseModel
from structlog.testing import capture_logs

from bus import ApiClient, Bus, Removed, TemplateBoard
from bus.templates import Posted
from contracts import api
from contracts import subjects as s
from contracts import tenants as t
from contracts.api import ApiFailure
from contracts.enums import Interval, Status
from contracts.models import ActiveTemplate, Company, RunTemplate, TemplateSpec
from contracts.records import JobRecord
from store import StoreConfig, StoreService, StoreUnavailable
from store.queries import Queries
from tests.fixtures import app_files
from tests.unit.jobs import message

R = TypeVar("R", bound=BaseModel)

APP = {
    "uuid": "0f6c2a4e-9a3b-4c1d-8e2f-1a2b3c4d5e6f",
    "name": "Echo",
    "executable": "echo",
    "cmdparams": "{GREETING} ${NAME}",
    "environment": {
        "GREETING": {"type": "string", "defval": "hello"},
        "NAME": {"type": "string", "defval": "world"},
    },
}


@dataclass
class Harness:
    """A running store, a client bus, the API and a direct line to the database."""

    store: StoreService
    bus: Bus
    api: ApiClient
    db: Queries
    conn: Any

    async def call(self, op: str, request: BaseModel, reply: type[R]) -> R:
        return await self.api.call(op, request, reply)

    async def raw(self, op: str, payload: dict[str, Any]) -> ApiFailure:
        """Send JSON the client models would refuse; return the store's refusal."""
        msg = await self.bus.nc.request(s.api_subject(op), json.dumps(payload).encode(), timeout=10)
        headers = msg.headers or {}
        assert "Nats-Service-Error-Code" in headers, f"{op} accepted {payload}"
        return ApiFailure(int(headers["Nats-Service-Error-Code"]), headers["Nats-Service-Error"])

    async def board(self) -> dict[int, ActiveTemplate]:
        """What is on the templates KV right now."""
        found: dict[int, ActiveTemplate] = {}
        async for changes in (await TemplateBoard.open(self.bus.js)).follow():
            for change in changes:
                if isinstance(change, Posted):
                    found[change.template.id] = change.template
                elif isinstance(change, Removed):
                    found.pop(change.template_id, None)
                else:
                    return found
        return found


@contextlib.asynccontextmanager
async def harness(nats_url: str, database_url: str, **config: Any) -> AsyncIterator[Harness]:
    """Start a store in-process; stop everything afterwards, whatever happened."""
    store = StoreService(StoreConfig(nats_url=nats_url, database_url=database_url, **config))
    await store.start()
    try:
        bus = await Bus.open(nats_url, "store-test")
        try:
            conn = await asyncpg.connect(database_url)
            try:
                yield Harness(store, bus, ApiClient(bus.nc), Queries(conn), conn)
            finally:
                await conn.close()
        finally:
            await bus.close()
    finally:
        await store.stop()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    """Poll `check` until it holds (projection is asynchronous)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def job_when(h: Harness, job_id: str, ready: Callable[[JobRecord], bool]) -> JobRecord:
    """The job once `ready` holds for its record."""
    found: list[JobRecord] = []

    async def check() -> bool:
        try:
            job = await h.call("job.get", api.JobRef(id=job_id), JobRecord)
        except ApiFailure:
            return False
        found[:] = [job]
        return ready(job)

    await eventually(check)
    return found[0]


async def setup_template(h: Harness, **spec: Any) -> RunTemplate:
    """A company `acme`, the Echo app and one template (daily unless told otherwise)."""
    companies = await h.call("company.list", api.CompanyFilter(), api.CompanyList)
    if not any(c.code == "acme" for c in companies.companies):
        await h.call("company.create", Company(code="acme", name="Acme"), Company)
    await h.call("app.import", api.AppImport(document=APP), api.AppImported)
    fields = {"name": "greet", "app": APP["uuid"], "company": "acme", "interv": "d", **spec}
    return await h.call("template.create", TemplateSpec.model_validate(fields), RunTemplate)


@pytest.fixture
async def h(nats_url: str, database_url: str) -> AsyncIterator[Harness]:
    async with harness(nats_url, database_url) as running:
        yield running


async def _count(h: Harness, table: str) -> int:
    return int(await h.conn.fetchval(f"SELECT count(*) FROM {table}"))


# companies


async def test_company_create_and_list(h: Harness) -> None:
    created = await h.call("company.create", Company(code="acme", name="Acme"), Company)
    assert created.id is not None and created.code == "acme" and created.enabled
    await h.call("company.create", Company(code="beta", name="Beta", enabled=False), Company)
    listed = await h.call("company.list", api.CompanyFilter(), api.CompanyList)
    assert [(c.code, c.enabled) for c in listed.companies] == [("acme", True), ("beta", False)]
    one = await h.call("company.list", api.CompanyFilter(company="beta"), api.CompanyList)
    assert [c.code for c in one.companies] == ["beta"]


async def test_duplicate_company_is_refused(h: Harness) -> None:
    await h.call("company.create", Company(code="acme", name="Acme"), Company)
    with pytest.raises(ApiFailure) as caught:
        await h.call("company.create", Company(code="acme", name="Other"), Company)
    assert (caught.value.code, caught.value.message) == (409, "company 'acme' already exists")
    listed = await h.call("company.list", api.CompanyFilter(), api.CompanyList)
    assert [c.name for c in listed.companies] == ["Acme"]


async def test_bad_company_code_is_refused(h: Harness) -> None:
    failure = await h.raw("company.create", {"code": "Bad Code!", "name": "x"})
    assert failure.code == 400 and "code" in failure.message
    assert await _count(h, "company") == 0


async def test_unknown_company_filter_says_how_to_create_it(h: Harness) -> None:
    for op in ("company.list", "app.list", "template.list"):
        with pytest.raises(ApiFailure) as caught:
            await h.call(op, api.CompanyFilter(company="nope"), BaseModel)
        assert caught.value.code == 404
        assert caught.value.message == "unknown company 'nope': create it with `jetjobs company create nope`"


async def test_a_company_filter_takes_a_code_the_store_lacks_but_has_jobs_of(h: Harness) -> None:
    """A job message may name a company the store does not have: its jobs are recorded,
    and `job list --company` finds them rather than calling the company unknown."""
    now = datetime.now(UTC)
    await h.bus.publisher.dispatch(
        [message(job_id="of-made-up", company="made-up", scheduled_at=now, dispatched_at=now)]
    )
    listed: list[api.JobList] = []

    async def recorded() -> bool:
        try:
            listed[:] = [await h.call("job.list", api.JobQuery(company="made-up"), api.JobList)]
        except ApiFailure as failure:  # unknown until its job is recorded
            assert failure.code == 404
            return False
        return True

    await eventually(recorded)
    assert [job.id for job in listed[0].jobs] == ["of-made-up"]
    with pytest.raises(ApiFailure) as caught:
        await h.call("job.list", api.JobQuery(company="nope"), api.JobList)
    assert caught.value.code == 404 and "unknown company 'nope'" in caught.value.message


async def test_a_request_without_a_reply_subject_is_carried_out_quietly(h: Harness) -> None:
    """A plain publish on an API subject (fire and forget) does what it asks; the
    answer nobody can receive is dropped without an error in the log."""
    with capture_logs() as logs:
        await h.bus.nc.publish(s.api_subject("company.create"), b'{"code": "quiet", "name": "Quiet"}')

        async def created() -> bool:
            listed = await h.call("company.list", api.CompanyFilter(), api.CompanyList)
            return any(c.code == "quiet" for c in listed.companies)

        await eventually(created)
        await asyncio.sleep(0.2)  # the answer's turn, after the company was made
    assert [e for e in logs if e["log_level"] in ("error", "critical")] == []
    assert any(e["event"] == "api.not_answered" for e in logs)


# applications


async def test_real_multiflexi_files_import(h: Harness) -> None:
    paths = app_files()
    assert len(paths) >= 2
    for path in paths:
        document = json.loads(path.read_text())
        reply = await h.call(
            "app.import", api.AppImport(document=document, source=path.name), api.AppImported
        )
        assert reply.created and reply.app.id is not None
        assert reply.app.uuid == document["uuid"] and reply.app.executable == document["executable"]
        stored = await h.conn.fetchval("SELECT document FROM application WHERE id = $1", reply.app.id)
        assert json.loads(stored) == document
    listed = await h.call("app.list", api.CompanyFilter(), api.AppList)
    assert {a.name for a in listed.apps} == {"Price Fixer", "ČSas statement downloader"}
    fixer = next(a for a in listed.apps if a.name == "Price Fixer")
    assert fixer.environment["ABRAFLEXI_PASSWORD"].secret
    assert fixer.tags == ["AbraFlexi", "Price", "Fixer"]


async def test_reimport_updates_in_place(h: Harness) -> None:
    first = await h.call("app.import", api.AppImport(document=APP), api.AppImported)
    changed = {**APP, "name": "Echo 2", "cmdparams": "-n {GREETING}"}
    second = await h.call("app.import", api.AppImport(document=changed), api.AppImported)
    assert first.created and not second.created
    assert second.app.id == first.app.id and second.app.name == "Echo 2"
    listed = await h.call("app.list", api.CompanyFilter(), api.AppList)
    assert [(a.id, a.cmdparams) for a in listed.apps] == [(first.app.id, "-n {GREETING}")]


async def test_app_warnings_are_returned(h: Harness) -> None:
    document = {"name": "x", "executable": "true", "colour": "red", "deploy": "apt install x"}
    reply = await h.call("app.import", api.AppImport(document=document), api.AppImported)
    assert any("colour" in w for w in reply.warnings)
    assert any("uuid" in w for w in reply.warnings)


async def test_app_without_executable_is_refused(h: Harness) -> None:
    document = {"name": "broken", "uuid": APP["uuid"]}
    with pytest.raises(ApiFailure) as caught:
        await h.call("app.import", api.AppImport(document=document, source="broken.json"), api.AppImported)
    assert caught.value.code == 400
    assert caught.value.message == (
        "broken.json: executable: missing; an application needs the program to run"
    )
    assert await _count(h, "application") == 0


# templates


async def test_template_create_by_uuid_and_by_id(h: Harness) -> None:
    made = await setup_template(h, env={"NAME": "jetjobs"})
    assert made.app == APP["uuid"] and made.company == "acme" and made.env == {"NAME": "jetjobs"}
    by_id = await h.call(
        "template.create",
        TemplateSpec(
            name="by-id", app=str(made.app_id), company="acme", interv=Interval.CUSTOM, cron="*/5 * * * *"
        ),
        RunTemplate,
    )
    assert by_id.app == APP["uuid"] and by_id.app_id == made.app_id
    got = await h.call("template.get", api.TemplateRef(id=made.id), RunTemplate)
    assert got == made
    listed = await h.call("template.list", api.CompanyFilter(company="acme"), api.TemplateList)
    assert [t.name for t in listed.templates] == ["by-id", "greet"]


BAD_TEMPLATES = [
    ({"interv": "c", "cron": "61 * * * *"}, 400, "invalid cron expression '61 * * * *'"),
    ({"interv": "x"}, 400, "interv"),
    ({"interv": "d", "cron": "* * * * *"}, 400, "a cron expression needs interval 'c'"),
    ({"timezone": "Mars/Base"}, 400, "unknown timezone 'Mars/Base'"),
    ({"company": "nope"}, 404, "unknown company 'nope': create it with `jetjobs company create nope`"),
    ({"app": "nope"}, 404, "unknown application 'nope': import it with `jetjobs app import FILE`"),
    ({"app": "999999"}, 404, "unknown application '999999'"),
    ({"app": "1f6c2a4e-9a3b-4c1d-8e2f-1a2b3c4d5e6f"}, 404, "unknown application"),
    ({"name": "greet"}, 409, "template 'greet' already exists in company 'acme' (template "),
]


@pytest.mark.parametrize(("fields", "code", "message"), BAD_TEMPLATES)
async def test_bad_template_is_refused_and_nothing_written(
    h: Harness, fields: dict[str, Any], code: int, message: str
) -> None:
    await setup_template(h)
    request = {"name": "other", "app": APP["uuid"], "company": "acme", "interv": "d", **fields}
    failure = await h.raw("template.create", request)
    assert failure.code == code
    assert message in failure.message
    assert await _count(h, "runtemplate") == 1


async def test_template_on_the_board(h: Harness) -> None:
    made = await setup_template(h, env={"NAME": "jetjobs"}, pool="fast", retries=2)
    manual = await setup_template(h, name="manual", interv="n")
    board = await h.board()
    assert set(board) == {made.id}
    active = board[made.id]
    assert active.cron == "0 0 * * *" and active.company == "acme" and active.pool == "fast"
    assert active.env == {"GREETING": "hello", "NAME": "jetjobs"}
    assert active.executable == "echo" and active.cmdparams == "{GREETING} ${NAME}"
    assert active.retries == 2 and active.revision
    assert manual.id not in board


async def test_template_update_is_reflected_on_the_board(h: Harness) -> None:
    made = await setup_template(h)
    before = (await h.board())[made.id]
    changed = await h.call(
        "template.update",
        api.TemplateUpdate(
            id=made.id, changes={"interv": "c", "cron": "*/5 * * * *", "timeouts": {"timeout": 9}}
        ),
        RunTemplate,
    )
    assert changed.cron == "*/5 * * * *" and changed.timeouts.timeout == 9
    assert changed.timeouts.timeout_ack == made.timeouts.timeout_ack
    after = (await h.board())[made.id]
    assert after.cron == "*/5 * * * *" and after.revision != before.revision
    back = await h.call(
        "template.update", api.TemplateUpdate(id=made.id, changes={"interv": "h"}), RunTemplate
    )
    assert back.cron is None and (await h.board())[made.id].cron == "0 * * * *"
    await h.call("template.update", api.TemplateUpdate(id=made.id, changes={"active": False}), RunTemplate)
    assert made.id not in await h.board()
    await h.call("template.update", api.TemplateUpdate(id=made.id, changes={"active": True}), RunTemplate)
    assert made.id in await h.board()


async def test_app_reimport_gives_templates_a_new_revision(h: Harness) -> None:
    made = await setup_template(h)
    before = (await h.board())[made.id]
    await h.call("app.import", api.AppImport(document={**APP, "executable": "printf"}), api.AppImported)
    after = (await h.board())[made.id]
    assert after.executable == "printf" and after.revision != before.revision


@pytest.mark.parametrize(
    ("changes", "code", "message"),
    [
        ({"cron": "not a cron"}, 400, "template.update: cron: invalid cron expression 'not a cron'"),
        ({"retries": -1}, 400, "retries"),
        ({"colour": "red"}, 400, "colour"),
        ({"company": "nope"}, 404, "unknown company 'nope'"),
        ({"app": "123456"}, 404, "unknown application '123456'"),
        ({"name": "taken"}, 409, "template 'taken' already exists in company 'acme'"),
    ],
)
async def test_bad_template_update_changes_nothing(
    h: Harness, changes: dict[str, Any], code: int, message: str
) -> None:
    await setup_template(h, name="taken")
    made = await setup_template(h)
    with pytest.raises(ApiFailure) as caught:
        await h.call("template.update", api.TemplateUpdate(id=made.id, changes=changes), RunTemplate)
    assert caught.value.code == code and message in caught.value.message
    assert await h.call("template.get", api.TemplateRef(id=made.id), RunTemplate) == made


async def test_unknown_template_is_404(h: Harness) -> None:
    for op, request in (
        ("template.get", api.TemplateRef(id=4242)),
        ("template.update", api.TemplateUpdate(id=4242, changes={"active": False})),
        ("template.run", api.RunNow(id=4242)),
    ):
        with pytest.raises(ApiFailure) as caught:
            await h.call(op, request, BaseModel)
        assert caught.value.code == 404
        assert caught.value.message == "unknown template 4242: see `jetjobs template list`"


async def test_disabled_company_templates_stay_off_the_board(h: Harness) -> None:
    await h.call("company.create", Company(code="acme", name="Acme", enabled=False), Company)
    made = await setup_template(h)
    assert made.id not in await h.board()
    with pytest.raises(ApiFailure) as caught:
        await h.call("template.run", api.RunNow(id=made.id), api.JobQueued)
    assert caught.value.code == 409 and "disabled" in caught.value.message


async def test_every_pooled_connection_is_ready_for_run_now_before_the_first_request(h: Harness) -> None:
    pool = h.store._pool
    connections = [await pool.acquire() for _ in range(pool.get_max_size())]
    try:
        prepared = [
            await c.fetchrow(
                "SELECT count(*) FILTER (WHERE statement LIKE '%company_actor%' AND statement LIKE '%runtemplate%')"
                " AS run_now, count(*) FILTER (WHERE statement LIKE '%flow_inbox%SKIP LOCKED%') AS take_inbox,"
                " count(*) FILTER (WHERE statement LIKE '%this_xact%') AS lock_run,"
                " count(*) FILTER (WHERE statement LIKE '%flow_node n SET status = u.status%') AS finish_nodes"
                " FROM pg_prepared_statements WHERE statement NOT LIKE '%pg_prepared_statements%'"  # not this one
            )
            for c in connections
        ]
    finally:
        for c in connections:
            await pool.release(c)
    assert len(prepared) == 10, prepared
    assert min(row["run_now"] for row in prepared) >= 1, prepared  # run-now's one lookup
    # a flow step's statements: taking outcomes, locking the run, recording the outcomes
    assert all(row["take_inbox"] and row["lock_run"] and row["finish_nodes"] for row in prepared), prepared


async def test_start_resyncs_the_board(nats_url: str, database_url: str) -> None:
    async with harness(nats_url, database_url) as first:
        made = await setup_template(first)
        board = await TemplateBoard.open(first.bus.js)
        await board.remove(made.id)
        await board.put(_ghost())
        assert set(await first.board()) == {9999}
    async with harness(nats_url, database_url) as second:
        assert set(await second.board()) == {made.id}


def _ghost() -> ActiveTemplate:
    return ActiveTemplate(
        id=9999,
        revision="x",
        name="ghost",
        company="acme",
        pool="default",
        app_id=1,
        executable="true",
        cron="* * * * *",
    )


# running and reading jobs


async def test_template_run_is_visible_at_once(h: Harness) -> None:
    made = await setup_template(h, interv="n", active=False, env={"NAME": "template"})
    queued = await h.call(
        "template.run", api.RunNow(id=made.id, env={"GREETING": "hi"}, launched_by="alice"), api.JobQueued
    )
    assert queued.company == "acme"
    job = await h.call("job.get", api.JobRef(id=queued.job_id), JobRecord)
    assert job.status is Status.DISPATCHED and job.attempt == 1 and not job.final
    assert job.argv == ["echo", "hi", "template"] and job.launched_by == "alice"
    assert job.template_id == made.id and job.pool == "default"
    assert [a.status for a in job.attempts] == [Status.DISPATCHED]
    info = await h.bus.js.consumer_info(s.DISPATCH_STREAM, s.pool_consumer("default"))
    assert info.num_pending == 1
    listed = await h.call("job.list", api.JobQuery(company="acme"), api.JobList)
    assert [j.id for j in listed.jobs] == [queued.job_id]


async def test_template_run_checks_the_actor_before_queueing_and_audits_with_the_job(h: Harness) -> None:
    made = await setup_template(h, interv="n", active=False)
    grant = t.ActorGrant(company="acme", actor="admin", role="admin", close=True)
    await h.call("actor.grant", grant, t.ActorList)
    admin, bob = (ApiClient(h.bus.nc, actor=name) for name in ("admin", "bob"))
    published = (await h.bus.js.stream_info(s.DISPATCH_STREAM)).state.last_seq
    with pytest.raises(ApiFailure) as caught:
        await bob.call("template.run", api.RunNow(id=made.id), api.JobQueued)
    assert caught.value.code == 403 and "actor 'bob' may not change in company 'acme'" in caught.value.message
    assert (await h.bus.js.stream_info(s.DISPATCH_STREAM)).state.last_seq == published
    queued = await admin.call("template.run", api.RunNow(id=made.id), api.JobQueued)
    runs = await h.conn.fetch("SELECT actor, company, detail FROM audit_log WHERE action = 'template.run'")
    assert [(r["actor"], r["company"], json.loads(r["detail"])["id"]) for r in runs] == [
        ("admin", "acme", made.id)
    ]
    assert await h.conn.fetchval("SELECT count(*) FROM job WHERE id = $1", queued.job_id) == 1


async def test_template_run_whose_record_cannot_be_written_still_answers_queued(
    h: Harness, database_url: str
) -> None:
    """The job is on the bus when the store writes its record: if PostgreSQL drops
    that write, run-now still answers with the job (an error would invite a retry
    that runs it twice), and the dispatch projection records the job."""
    made = await setup_template(h, interv="n", active=False)
    published = (await h.bus.js.stream_info(s.DISPATCH_STREAM)).state.last_seq
    blocker = await asyncpg.connect(database_url)
    try:
        holding = blocker.transaction()
        await holding.start()
        await blocker.execute("LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE")
        running = asyncio.create_task(h.call("template.run", api.RunNow(id=made.id), api.JobQueued))

        async def write_waits_for_the_lock() -> bool:
            waiting = await h.conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%audit_log%'"
            )
            for row in waiting:  # the store's write dies with its connection, a real outage of one backend
                await h.conn.execute("SELECT pg_terminate_backend($1)", row["pid"])
            return bool(waiting)

        await eventually(write_waits_for_the_lock)
        await holding.rollback()
        queued = await asyncio.wait_for(running, 30)
    finally:
        await blocker.close()
    assert queued.company == "acme"

    async def recorded() -> bool:
        return await h.db.job_by_id(queued.job_id) is not None

    await eventually(recorded)
    assert await _count(h, "job") == 1
    last = (await h.bus.js.stream_info(s.DISPATCH_STREAM)).state.last_seq
    assert last == published + 1, "published once: nothing to run twice"


async def test_job_list_filters_newest_first(h: Harness) -> None:
    made = await setup_template(h)
    ids = [(await h.call("template.run", api.RunNow(id=made.id), api.JobQueued)).job_id for _ in range(3)]
    listed = await h.call("job.list", api.JobQuery(template_id=made.id), api.JobList)
    assert [j.id for j in listed.jobs] == ids[::-1]
    limited = await h.call("job.list", api.JobQuery(status=Status.DISPATCHED, limit=2), api.JobList)
    assert [j.id for j in limited.jobs] == ids[:0:-1]
    none = await h.call("job.list", api.JobQuery(status=Status.PROCESSED), api.JobList)
    assert none.jobs == []


async def test_unknown_job_is_404(h: Harness) -> None:
    with pytest.raises(ApiFailure) as caught:
        await h.call("job.get", api.JobRef(id="nope"), JobRecord)
    assert (caught.value.code, caught.value.message) == (404, "unknown job 'nope': see `jetjobs job list`")


async def test_app_list_for_a_company_shows_the_apps_its_templates_use(h: Harness) -> None:
    await setup_template(h)
    await h.call("company.create", Company(code="beta", name="Beta"), Company)
    await h.call(
        "app.import", api.AppImport(document={"name": "other", "executable": "true"}), api.AppImported
    )
    acme = await h.call("app.list", api.CompanyFilter(company="acme"), api.AppList)
    beta = await h.call("app.list", api.CompanyFilter(company="beta"), api.AppList)
    assert [a.name for a in acme.apps] == ["Echo"] and beta.apps == []


async def test_unstorable_input_is_a_clear_400(h: Harness) -> None:
    await setup_template(h)
    failure = await h.raw("template.create", {"name": "n\u0000l", "app": APP["uuid"], "company": "acme"})
    assert failure.code == 400 and failure.message.startswith(
        "template.create: a value is out of range or cannot be stored"
    )
    assert await _count(h, "runtemplate") == 1


# the service itself


async def test_unreachable_database_fails_start_clearly(nats_url: str) -> None:
    store = StoreService(StoreConfig(nats_url=nats_url, database_url="postgresql://jj:pw@127.0.0.1:1/none"))
    with pytest.raises(
        StoreUnavailable, match=r"cannot use PostgreSQL at postgresql://jj:\*\*\*@127\.0\.0\.1:1/none"
    ):
        await store.start()
    await store.stop()


async def test_stop_is_idempotent_and_restart_works(nats_url: str, database_url: str) -> None:
    store = StoreService(StoreConfig(nats_url=nats_url, database_url=database_url))
    await store.stop()
    await store.start()
    await store.stop()
    await store.stop()
    async with harness(nats_url, database_url) as again:
        made = await setup_template(again)
        assert made.id in await again.board()
