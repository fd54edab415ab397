"""Who may do what, against a real store: in a closed company an actor with no role
may neither read nor change anything, a reader may only read; lists without a
company show only companies the actor may read; every change is audited; a list
filtered by an unknown company is a 404; a dead letter is replayed once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel

from bus import ApiClient
from contracts import api
from contracts import schedule as sc
from contracts import subjects as s
from contracts import tenants as t
from contracts.api import OPERATIONS, ApiFailure
from contracts.enums import Status
from contracts.flows import FlowNode, FlowQuery, FlowRef, FlowRun, FlowRunRequest, FlowSpec
from contracts.lifecycle import DeadLetterList, DeadLetterQuery, DeadLetterRef, Replayed
from contracts.messages import DeadLetter
from contracts.models import Company, RunTemplate, TemplateSpec
from contracts.records import JobRecord

from .test_store import APP, Harness, eventually, harness

ECHO = str(APP["uuid"])

pytestmark = pytest.mark.timeout(180)


@dataclass
class World:
    """Open company `alpha`; closed `gamma` with admin `root` and reader `rita`; `eve` has no role."""

    h: Harness
    root: ApiClient
    rita: ApiClient
    eve: ApiClient
    alpha_template: int
    gamma_template: int
    alpha_job: str
    gamma_job: str
    letter: int
    run: str

    async def ask(self, client: ApiClient, op: str, request: BaseModel) -> BaseModel:
        return await client.call(op, request, OPERATIONS[op].reply)

    async def refused(self, client: ApiClient, op: str, request: BaseModel) -> ApiFailure:
        with pytest.raises(ApiFailure) as caught:
            await self.ask(client, op, request)
        return caught.value

    async def dead_letter(self, job_id: str) -> int:
        """Bury the dispatched message of a gamma job and wait for the store to record it."""
        subject = s.dispatch_subject("gamma", "default")
        payload = (await self.h.bus.js.get_last_msg(s.DISPATCH_STREAM, subject)).data or b""
        assert job_id in payload.decode()
        letter = DeadLetter(
            company="gamma",
            job_id=job_id,
            reason="no retry is left: exit 1",
            subject=subject,
            payload=payload.decode(),
            at=datetime.now(UTC),
        )
        await self.h.bus.publisher.dead(letter, f"dead-{job_id}")
        found: list[int] = []

        async def recorded() -> bool:
            listed = await self.root.call("dlq.list", DeadLetterQuery(company="gamma"), DeadLetterList)
            found[:] = [d.id for d in listed.dead_letters if d.job_id == job_id]
            return bool(found)

        await eventually(recorded)
        return found[0]

    async def gamma_run(self) -> str:
        return (
            await self.root.call("template.run", api.RunNow(id=self.gamma_template), api.JobQueued)
        ).job_id


async def _template(client: ApiClient, company: str) -> int:
    spec = TemplateSpec.model_validate(
        {"name": "greet", "app": APP["uuid"], "company": company, "interv": "d"}
    )
    return (await client.call("template.create", spec, RunTemplate)).id


@pytest.fixture
async def w(nats_url: str, database_url: str) -> AsyncIterator[World]:
    async with harness(nats_url, database_url) as h:
        root, rita, eve = (ApiClient(h.bus.nc, actor=name) for name in ("root", "rita", "eve"))
        await h.call("app.import", api.AppImport(document=APP), api.AppImported)
        for code in ("alpha", "gamma"):
            await h.call("company.create", Company(code=code, name=code.title()), Company)
        await h.call(
            "actor.grant", t.ActorGrant(company="gamma", actor="root", role="admin", close=True), t.ActorList
        )
        await root.call(
            "actor.grant", t.ActorGrant(company="gamma", actor="rita", role="reader"), t.ActorList
        )
        alpha_template, gamma_template = await _template(h.api, "alpha"), await _template(root, "gamma")
        alpha_job = (await h.call("template.run", api.RunNow(id=alpha_template), api.JobQueued)).job_id
        world = World(h, root, rita, eve, alpha_template, gamma_template, alpha_job, "", 0, "")
        buried = await world.gamma_run()
        world.letter = await world.dead_letter(buried)
        flow = FlowSpec(name="f", company="gamma", nodes=[FlowNode(name="a", app=ECHO)])
        world.run = (await root.call("flow.run", FlowRunRequest(spec=flow), FlowRun)).id
        world.gamma_job = await world.gamma_run()  # the newest job of all
        await eventually(lambda: _recorded(h, world.gamma_job))
        yield world


async def _recorded(h: Harness, job_id: str) -> bool:
    return await h.db.job_by_id(job_id) is not None


def _gamma_requests(w: World) -> list[tuple[str, BaseModel]]:
    """A request about gamma (or something of gamma's) for every operation that needs a role there."""
    past = datetime.now(UTC) - timedelta(hours=1)
    flow = FlowSpec(name="g", company="gamma", nodes=[FlowNode(name="a", app=ECHO)])
    template, job = api.TemplateRef(id=w.gamma_template), api.JobRef(id=w.gamma_job)
    spec = TemplateSpec.model_validate({"name": "x", "app": APP["uuid"], "company": "gamma", "interv": "d"})
    return [
        ("company.list", api.CompanyFilter(company="gamma")),
        ("company.pause", sc.CompanyRef(code="gamma")),
        ("company.resume", sc.CompanyRef(code="gamma")),
        ("app.list", api.CompanyFilter(company="gamma")),
        ("template.create", spec),
        ("template.update", api.TemplateUpdate(id=w.gamma_template, changes={"pool": "other"})),
        ("template.update", api.TemplateUpdate(id=w.alpha_template, changes={"company": "gamma"})),
        ("template.get", template),
        ("template.list", api.CompanyFilter(company="gamma")),
        ("template.run", api.RunNow(id=w.gamma_template)),
        ("template.env", template),
        ("template.pause", template),
        ("template.resume", template),
        ("template.delete", template),
        ("template.explain", sc.ExplainRequest(id=w.gamma_template)),
        ("template.backfill", sc.Backfill(id=w.gamma_template, start=past - timedelta(days=2), end=past)),
        ("job.get", job),
        ("job.list", api.JobQuery(company="gamma")),
        ("job.cancel", job),
        ("artifact.list", job),
        ("artifact.get", t.ArtifactRef(job_id=w.gamma_job, name="report")),
        ("dlq.list", DeadLetterQuery(company="gamma")),
        ("dlq.get", DeadLetterRef(id=w.letter)),
        ("dlq.replay", DeadLetterRef(id=w.letter)),
        ("credential.list", t.CredentialFilter(company="gamma")),
        ("credential.assign", t.CredentialAssign(template_id=w.gamma_template, name="c")),
        ("actor.grant", t.ActorGrant(company="gamma", actor="eve", role="admin")),
        ("actor.list", t.CredentialFilter(company="gamma")),
        ("audit.list", t.AuditQuery(company="gamma")),
        ("flow.validate", flow),
        ("flow.save", flow),
        ("flow.run", FlowRunRequest(spec=flow)),
        ("flow.run", FlowRunRequest(company="gamma", name="nosuch")),
        ("flow.get", FlowRef(id=w.run)),
        ("flow.list", FlowQuery(company="gamma")),
        ("flow.cancel", FlowRef(id=w.run)),
        ("flow.retry", FlowRef(id=w.run)),
    ]


CHANGES = {
    "company.pause",
    "company.resume",
    "template.create",
    "template.update",
    "template.run",
    "template.pause",
    "template.resume",
    "template.delete",
    "template.backfill",
    "job.cancel",
    "dlq.replay",
    "credential.assign",
    "actor.grant",
    "flow.save",
    "flow.run",
    "flow.cancel",
    "flow.retry",
}


async def test_a_closed_company_refuses_strangers_everything_and_readers_every_change(w: World) -> None:
    for op, request in _gamma_requests(w):
        refused = await w.refused(w.eve, op, request)
        assert refused.code == 403, (op, refused.message)
        need = "change" if op in CHANGES else "read"
        assert f"actor 'eve' may not {need} in company 'gamma'" in refused.message, (op, refused.message)
        if op in CHANGES:
            refused = await w.refused(w.rita, op, request)
            assert refused.code == 403 and "needs the role admin (an admin grants" in refused.message, op
    job = await w.h.db.job_by_id(w.gamma_job)
    assert job is not None and not job.final, "the job was not cancelled"
    template = await w.ask(w.root, "template.get", api.TemplateRef(id=w.gamma_template))
    assert isinstance(template, RunTemplate) and not template.paused and template.pool == "default"
    assert template.deleted_at is None
    assert await w.h.conn.fetchval("SELECT paused FROM company WHERE code = 'gamma'") is False
    assert await w.h.conn.fetchval("SELECT replayed_as FROM dead_letter WHERE id = $1", w.letter) is None
    strangers = await w.h.conn.fetchval("SELECT count(*) FROM audit_log WHERE actor IN ('eve', 'rita')")
    assert strangers == 0


async def test_a_reader_reads_and_the_job_logs_lookup_says_who_may(w: World) -> None:
    for op, request in _gamma_requests(w):
        if op not in CHANGES and not op.startswith("artifact.get"):
            await w.ask(w.rita, op, request)
    refused = await w.refused(w.eve, "job.get", api.JobRef(id=w.gamma_job))
    assert refused.message == (
        "actor 'eve' may not read in company 'gamma': it needs the role admin or reader "
        "(an admin grants it with `jetjobs actor grant gamma eve ROLE`)"
    )


async def test_lists_without_a_company_show_only_companies_the_actor_may_read(w: World) -> None:
    async def companies(client: ApiClient, op: str, request: BaseModel, rows: str) -> list[str]:
        reply = await w.ask(client, op, request)
        return sorted({str(getattr(row, "company", None) or row.code) for row in getattr(reply, rows)})

    lists = [
        ("job.list", api.JobQuery(), "jobs"),
        ("template.list", api.CompanyFilter(), "templates"),
        ("dlq.list", DeadLetterQuery(), "dead_letters"),
        ("flow.list", FlowQuery(), "runs"),
        ("company.list", api.CompanyFilter(), "companies"),
    ]
    for op, request, rows in lists:
        assert await companies(w.eve, op, request, rows) in ([], ["alpha"]), op
        assert "gamma" in await companies(w.rita, op, request, rows), op
    newest = await w.eve.call("job.list", api.JobQuery(limit=1), api.JobList)
    assert [j.id for j in newest.jobs] == [w.alpha_job], "the limit counts only jobs eve may see"
    queued = await w.eve.call("job.list", api.JobQuery(status=Status.DISPATCHED, limit=5), api.JobList)
    assert {j.company for j in queued.jobs} == {"alpha"}

    audit = await w.eve.call("audit.list", t.AuditQuery(limit=1000), t.AuditList)
    assert {e.company for e in audit.entries} == {None, "alpha"}
    assert ("app.import", None) in {(e.action, e.company) for e in audit.entries}
    assert "gamma" in {
        e.company for e in (await w.rita.call("audit.list", t.AuditQuery(), t.AuditList)).entries
    }


async def test_a_list_filtered_by_an_unknown_company_says_so(w: World) -> None:
    for op, request in [
        ("job.list", api.JobQuery(company="nosuch")),
        ("dlq.list", DeadLetterQuery(company="nosuch")),
        ("flow.list", FlowQuery(company="nosuch")),
        ("template.list", api.CompanyFilter(company="nosuch")),
        ("company.list", api.CompanyFilter(company="nosuch")),
        ("app.list", api.CompanyFilter(company="nosuch")),
        ("audit.list", t.AuditQuery(company="nosuch")),
        ("credential.list", t.CredentialFilter(company="nosuch")),
        ("actor.list", t.CredentialFilter(company="nosuch")),
    ]:
        refused = await w.refused(w.eve, op, request)
        assert (refused.code, refused.message) == (
            404,
            "unknown company 'nosuch': create it with `jetjobs company create nosuch`",
        ), op


async def test_every_change_is_audited_and_a_dead_letter_is_replayed_once(w: World) -> None:
    template = api.TemplateRef(id=w.gamma_template)
    past = datetime.now(UTC) - timedelta(hours=1)
    for op, request in [
        ("template.pause", template),
        ("template.resume", template),
        ("company.pause", sc.CompanyRef(code="gamma")),
        ("company.resume", sc.CompanyRef(code="gamma")),
        ("template.backfill", sc.Backfill(id=w.gamma_template, start=past - timedelta(days=2), end=past)),
        ("job.cancel", api.JobRef(id=w.gamma_job)),
        ("dlq.replay", DeadLetterRef(id=w.letter)),
    ]:
        await w.ask(w.root, op, request)
        rows = await w.h.conn.fetch("SELECT actor, company FROM audit_log WHERE action = $1", op)
        assert [tuple(r) for r in rows] == [("root", "gamma")], op

    again = await w.refused(w.root, "dlq.replay", DeadLetterRef(id=w.letter))
    assert again.code == 409 and again.message.startswith(f"dead letter {w.letter} was already replayed, as ")
    assert "replay the job's newest dead letter (`jetjobs dlq list --company gamma`)" in again.message


async def test_concurrent_replays_of_one_dead_letter_queue_one_copy(w: World) -> None:
    job_id = await w.gamma_run()
    letter = await w.dead_letter(job_id)
    published = (await w.h.bus.js.stream_info(s.DISPATCH_STREAM)).state.last_seq
    replay = DeadLetterRef(id=letter)
    outcomes = await asyncio.gather(
        *(w.root.call("dlq.replay", replay, Replayed) for _ in range(3)), return_exceptions=True
    )
    replayed = [o for o in outcomes if isinstance(o, Replayed)]
    refused = [o for o in outcomes if isinstance(o, ApiFailure)]
    assert len(replayed) == 1 and len(refused) == 2, outcomes
    assert all(
        r.code == 409 and f"as attempt {replayed[0].attempt} of job {job_id}" in r.message for r in refused
    )
    assert (await w.h.bus.js.stream_info(s.DISPATCH_STREAM)).state.last_seq == published + 1
    job = await w.root.call("job.get", api.JobRef(id=job_id), JobRecord)
    assert job.attempt == replayed[0].attempt == 2


async def test_jobs_of_an_unreadable_template_are_refused_as_the_template_is(w: World) -> None:
    """`job.list --template` of a closed company's template listed nothing, with success."""
    read = await w.refused(w.eve, "template.get", api.TemplateRef(id=w.gamma_template))
    assert read.code == 403 and "actor 'eve' may not read in company 'gamma'" in read.message
    for query in (
        api.JobQuery(template_id=w.gamma_template),
        api.JobQuery(company="alpha", template_id=w.gamma_template),
    ):
        listed = await w.refused(w.eve, "job.list", query)
        assert (listed.code, listed.message) == (read.code, read.message), query
    mine = await w.eve.call("job.list", api.JobQuery(template_id=w.alpha_template), api.JobList)
    assert [j.id for j in mine.jobs] == [w.alpha_job]
    readers = await w.rita.call("job.list", api.JobQuery(template_id=w.gamma_template), api.JobList)
    assert w.gamma_job in [j.id for j in readers.jobs]
    missing = await w.refused(w.eve, "job.list", api.JobQuery(template_id=999_999))
    assert (missing.code, missing.message) == (404, "unknown template 999999: see `jetjobs template list`")
    await w.root.call("template.delete", api.TemplateRef(id=w.gamma_template), RunTemplate)
    deleted = await w.refused(w.eve, "job.list", api.JobQuery(template_id=w.gamma_template))
    assert (deleted.code, deleted.message) == (read.code, read.message), "a deleted template's too"
    kept = await w.rita.call("job.list", api.JobQuery(template_id=w.gamma_template), api.JobList)
    assert w.gamma_job in [j.id for j in kept.jobs]


async def test_every_list_filtered_by_an_unreadable_company_is_refused_alike(w: World) -> None:
    read = await w.refused(w.eve, "template.get", api.TemplateRef(id=w.gamma_template))
    for op, request in [
        ("job.list", api.JobQuery(company="gamma")),
        ("template.list", api.TemplateQuery(company="gamma")),
        ("template.list", api.TemplateQuery(company="gamma", deleted=True)),
        ("flow.list", FlowQuery(company="gamma")),
        ("dlq.list", DeadLetterQuery(company="gamma")),
        ("audit.list", t.AuditQuery(company="gamma")),
        ("app.list", api.AppQuery(company="gamma")),
        ("credential.list", t.CredentialFilter(company="gamma")),
        ("actor.list", t.CredentialFilter(company="gamma")),
    ]:
        listed = await w.refused(w.eve, op, request)
        assert (listed.code, listed.message) == (read.code, read.message), op
