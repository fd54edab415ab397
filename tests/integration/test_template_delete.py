"""Deleting a run template, on real servers: it stops firing at once and stays
stopped across a store and scheduler restart, its history stays readable, and a
deleted template refuses every run and change with a clear answer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel

from bus import ApiClient, TemplateBoard
from contracts import api
from contracts import schedule as sc
from contracts import tenants as t
from contracts.api import OPERATIONS, ApiFailure
from contracts.flows import FlowChecked, FlowNode, FlowRunRequest, FlowSpec
from contracts.models import RunTemplate, TemplateSpec
from contracts.records import JobRecord
from tests.stack import Stack, eventually, make_scheduler, make_store, running_stack

pytestmark = pytest.mark.timeout(150)

EVERY_SECOND = {"company": "acme", "interv": "c", "cron": "* * * * * *", "overlap": "allow"}


async def _jobs(stack: Stack, template_id: int) -> list[JobRecord]:
    return await stack.jobs(template_id=template_id, limit=1000)


async def _finished(stack: Stack, template_id: int) -> list[JobRecord]:
    return [j for j in await _jobs(stack, template_id) if j.final]


async def _delete(client: ApiClient, template_id: int) -> RunTemplate:
    return await client.call("template.delete", api.TemplateRef(id=template_id), RunTemplate)


async def _refused(stack: Stack, op: str, request: BaseModel) -> ApiFailure:
    with pytest.raises(ApiFailure) as caught:
        await stack.client.call(op, request, OPERATIONS[op].reply)
    return caught.value


def _fired_after(jobs: list[JobRecord], instant: datetime) -> list[JobRecord]:
    return [j for j in jobs if j.scheduled_at is not None and j.scheduled_at > instant]


async def _restart_store_and_scheduler(stack: Stack) -> None:
    """Stop the scheduler and the store, then start fresh ones in their places."""
    store, scheduler = stack.services[0], stack.services[-1]
    await scheduler.stop()
    await store.stop()
    stack.services[0] = make_store(stack.nats_url, stack.database_url)
    await stack.services[0].start()
    stack.services[-1] = make_scheduler(stack.nats_url)
    await stack.services[-1].start()


async def test_a_deleted_template_stops_firing_for_good_and_keeps_its_history(
    nats_url: str, database_url: str
) -> None:
    async with running_stack(nats_url, database_url) as stack:
        await stack.company("acme")
        app = (await stack.app("-c 'exit 0'")).app.uuid
        doomed = await stack.template(name="doomed", app=app, **EVERY_SECOND)
        kept = await stack.template(name="kept", app=app, **EVERY_SECOND)
        ran = await eventually(lambda: _finished(stack, doomed.id), 40, "a finished run of 'doomed'")

        deleted = await _delete(stack.client, doomed.id)
        assert deleted.id == doomed.id and deleted.deleted_at is not None
        assert doomed.id not in await (await TemplateBoard.open(stack.bus.js)).ids()
        # a slot already handed to the publisher at the moment of the delete may still go out
        cutoff = deleted.deleted_at + timedelta(seconds=1)
        await asyncio.sleep(3)
        assert _fired_after(await _jobs(stack, doomed.id), cutoff) == []

        await _restart_store_and_scheduler(stack)
        restarted = datetime.now(UTC)

        async def kept_fires_again() -> list[JobRecord]:
            return _fired_after(await _jobs(stack, kept.id), restarted)

        await eventually(kept_fires_again, 40, "the live template to fire after the restart")
        await asyncio.sleep(2)
        assert _fired_after(await _jobs(stack, doomed.id), cutoff) == []
        assert doomed.id not in await (await TemplateBoard.open(stack.bus.js)).ids()

        job = await stack.job(ran[0].id)
        assert job.template_id == doomed.id and job.attempts
        assert {j.id for j in ran} <= {j.id for j in await _jobs(stack, doomed.id)}
        shown = await stack.client.call("template.get", api.TemplateRef(id=doomed.id), RunTemplate)
        assert shown.deleted_at == deleted.deleted_at
        live = await stack.client.call("template.list", api.TemplateQuery(company="acme"), api.TemplateList)
        assert [x.name for x in live.templates] == ["kept"]
        gone = await stack.client.call(
            "template.list", api.TemplateQuery(company="acme", deleted=True), api.TemplateList
        )
        assert [x.id for x in gone.templates] == [doomed.id]
        explained = await stack.client.call(
            "template.explain", sc.ExplainRequest(id=doomed.id), sc.Explanation
        )
        assert explained.deleted_at is not None and explained.next == [] and explained.slots
        audit = await stack.client.call("audit.list", t.AuditQuery(company="acme"), t.AuditList)
        entry = next(e for e in audit.entries if e.action == "template.delete")
        assert entry.detail == {"id": doomed.id, "name": "doomed"}


async def test_a_deleted_template_refuses_runs_and_changes_and_its_id_is_not_reused(
    nats_url: str, database_url: str
) -> None:
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        await stack.company("acme")
        app = (await stack.app("-c 'exit 0'")).app.uuid
        template = await stack.template(name="nightly", app=app, company="acme", interv="d")
        queued = await stack.run(template.id)
        await _delete(stack.client, template.id)

        ref = api.TemplateRef(id=template.id)
        past = datetime.now(UTC) - timedelta(hours=1)
        refusals: list[tuple[str, BaseModel]] = [
            ("template.run", api.RunNow(id=template.id)),
            ("template.update", api.TemplateUpdate(id=template.id, changes={"pool": "x"})),
            ("template.pause", ref),
            ("template.resume", ref),
            ("template.delete", ref),
            ("template.backfill", sc.Backfill(id=template.id, start=past - timedelta(days=3), end=past)),
            ("credential.assign", t.CredentialAssign(template_id=template.id, name="c")),
        ]
        for op, request in refusals:
            refused = await _refused(stack, op, request)
            assert refused.code == 409, (op, refused.message)
            assert f"template {template.id} (nightly) was deleted at " in refused.message, op
            assert f"`jetjobs job list --template {template.id}`" in refused.message, op
        unknown = await _refused(stack, "template.delete", api.TemplateRef(id=999999))
        assert (unknown.code, unknown.message) == (
            404,
            "unknown template 999999: see `jetjobs template list`",
        )

        assert (await stack.final_job(queued.job_id)).status.value == "processed"
        again = await stack.template(name="nightly", app=app, company="acme", interv="d")
        assert again.id > template.id and again.deleted_at is None
        env = await stack.client.call("template.env", ref, t.TemplateEnv)
        assert env.template_id == template.id


async def test_a_template_in_a_saved_flow_is_not_deleted_and_flows_refuse_a_deleted_one(
    nats_url: str, database_url: str
) -> None:
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        await stack.company("acme")
        app = (await stack.app("-c 'exit 0'")).app.uuid
        step = await stack.template(name="step", app=app, company="acme", interv="n")
        uses = FlowSpec(name="pipeline", company="acme", nodes=[FlowNode(name="a", template=step.id)])
        await stack.client.call("flow.save", uses, FlowChecked)
        await stack.client.call("flow.save", uses.model_copy(update={"name": "other"}), FlowChecked)

        refused = await _refused(stack, "template.delete", api.TemplateRef(id=step.id))
        assert refused.code == 409
        assert "saved flow(s) 'other', 'pipeline' of company 'acme'" in refused.message
        assert "`jetjobs flow save FILE`" in refused.message
        shown = await stack.client.call("template.get", api.TemplateRef(id=step.id), RunTemplate)
        assert shown.deleted_at is None

        for name in ("pipeline", "other"):
            without = FlowSpec(name=name, company="acme", nodes=[FlowNode(name="a", app=app)])
            await stack.client.call("flow.save", without, FlowChecked)
        await _delete(stack.client, step.id)

        refused = await _refused(stack, "flow.validate", uses)
        assert refused.code == 409 and refused.message.startswith(
            f"node 'a': template {step.id} (step) was deleted"
        )
        refused = await _refused(stack, "flow.run", FlowRunRequest(spec=uses))
        assert refused.code == 409 and "was deleted" in refused.message


async def test_only_an_admin_of_the_company_deletes_a_template(nats_url: str, database_url: str) -> None:
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        root, rita = (ApiClient(stack.bus.nc, actor=name) for name in ("root", "rita"))
        await stack.company("gamma")
        await stack.client.call(
            "actor.grant", t.ActorGrant(company="gamma", actor="root", role="admin", close=True), t.ActorList
        )
        await root.call(
            "actor.grant", t.ActorGrant(company="gamma", actor="rita", role="reader"), t.ActorList
        )
        app = (await stack.app("-c 'exit 0'")).app.uuid
        spec = TemplateSpec.model_validate({"name": "g", "app": app, "company": "gamma", "interv": "d"})
        template = await root.call("template.create", spec, RunTemplate)

        with pytest.raises(ApiFailure) as caught:
            await _delete(rita, template.id)
        assert caught.value.code == 403
        assert (
            "actor 'rita' may not change in company 'gamma': it needs the role admin" in caught.value.message
        )
        assert (
            await rita.call("template.get", api.TemplateRef(id=template.id), RunTemplate)
        ).deleted_at is None

        assert (await _delete(root, template.id)).deleted_at is not None
        audit = await root.call("audit.list", t.AuditQuery(company="gamma"), t.AuditList)
        assert [(e.actor, e.action) for e in audit.entries if e.action == "template.delete"] == [
            ("root", "template.delete")
        ]
