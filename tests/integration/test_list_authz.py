"""A list filtered by something of a company the caller may not read is refused
exactly as reading that thing is: `job.list --template` of a closed company's
template says who may read it, as `template.get` does, instead of listing nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from pydantic import BaseModel

from bus import ApiClient
from contracts import api
from contracts import tenants as t
from contracts.api import OPERATIONS, ApiFailure
from contracts.flows import FlowQuery
from contracts.lifecycle import DeadLetterQuery
from contracts.models import Company, RunTemplate, TemplateSpec

from .test_store import APP, Harness, eventually, harness

pytestmark = pytest.mark.timeout(120)


@dataclass
class World:
    """Open company `alpha`; closed `gamma` with admin `root` and reader `rita`; `eve`
    has no role. Each company has a template; gamma's has run once."""

    h: Harness
    root: ApiClient
    rita: ApiClient
    eve: ApiClient
    alpha_template: int
    gamma_template: int
    gamma_job: str

    async def refused(self, client: ApiClient, op: str, request: BaseModel) -> ApiFailure:
        with pytest.raises(ApiFailure) as caught:
            await client.call(op, request, OPERATIONS[op].reply)
        return caught.value


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
        job = (await root.call("template.run", api.RunNow(id=gamma_template), api.JobQueued)).job_id

        async def recorded() -> bool:
            return await h.db.job_by_id(job) is not None

        await eventually(recorded)
        yield World(h, root, rita, eve, alpha_template, gamma_template, job)


async def test_jobs_of_an_unreadable_template_are_refused_as_the_template_is(w: World) -> None:
    read = await w.refused(w.eve, "template.get", api.TemplateRef(id=w.gamma_template))
    assert read.code == 403 and "actor 'eve' may not read in company 'gamma'" in read.message
    for query in (
        api.JobQuery(template_id=w.gamma_template),
        api.JobQuery(company="alpha", template_id=w.gamma_template),
    ):
        listed = await w.refused(w.eve, "job.list", query)
        assert (listed.code, listed.message) == (read.code, read.message), query

    mine = await w.eve.call("job.list", api.JobQuery(template_id=w.alpha_template), api.JobList)
    assert mine.jobs == []
    readers = await w.rita.call("job.list", api.JobQuery(template_id=w.gamma_template), api.JobList)
    assert [j.id for j in readers.jobs] == [w.gamma_job]


async def test_an_unknown_template_filter_stays_a_404(w: World) -> None:
    missing = await w.refused(w.eve, "job.list", api.JobQuery(template_id=999_999))
    assert (missing.code, missing.message) == (
        404,
        "unknown template 999999: see `jetjobs template list`",
    )


async def test_a_deleted_template_of_an_unreadable_company_is_refused_too(w: World) -> None:
    await w.root.call("template.delete", api.TemplateRef(id=w.gamma_template), RunTemplate)
    listed = await w.refused(w.eve, "job.list", api.JobQuery(template_id=w.gamma_template))
    assert listed.code == 403 and "actor 'eve' may not read in company 'gamma'" in listed.message
    kept = await w.rita.call("job.list", api.JobQuery(template_id=w.gamma_template), api.JobList)
    assert [j.id for j in kept.jobs] == [w.gamma_job]


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
