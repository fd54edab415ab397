"""A flow node that runs an application directly (`app:`, no template): the values its
env gives the application's secret fields are sealed for its job before the message
goes, carried by name and served by `secrets.fetch` to that job alone (a request naming
no template); the application's own defaults stay in the env, masked, as they do for a
template; a store without a key leaves the values in the message, masked, as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts import tenants as t
from contracts.api import ApiFailure
from contracts.dispatch import adhoc_job_id
from contracts.enums import Status
from contracts.flows import FlowRef, FlowRun, FlowRunRequest, FlowSpec, FlowStatus
from contracts.lifecycle import DeadLetterList, DeadLetterQuery, DeadLetterRef, Replayed
from store.credentials import new_key
from store.rotation import Rotated, rotate_key
from tests.stack import Stack, eventually

from .tenants_stack import keyring, sealed_and_clear, tenant_stack
from .test_job_secrets import _sealed_row, _tables_holding
from .test_template_secrets import SCRIPT, Dispatched, _printed, _rows, _stream_bytes, run_flow_node

pytestmark = pytest.mark.timeout(120)

RUN, DEFAULT = "flow-Pw-16180", "app-Pw-14142"
ENV = {
    "PASSWORD": {"type": "password", "required": True, "defval": DEFAULT},
    "USER_NAME": {"type": "string", "defval": "demo"},
}


async def _app(stack: Stack, script: str = SCRIPT) -> str:
    await stack.company("acme")
    app = await stack.app(f"-c '{script}' argv0 {{PASSWORD}}", env=ENV)
    return str(app.app.id)


async def _fetched(
    stack: Stack, job_id: str, company: str = "acme", template_id: int | None = None
) -> dict[str, str]:
    request = t.SecretsRequest(job_id=job_id, company=company, template_id=template_id, names=["PASSWORD"])
    return (await stack.client.call("secrets.fetch", request, t.SecretsReply)).values


async def _refusal(
    stack: Stack, job_id: str, company: str = "acme", template_id: int | None = None
) -> ApiFailure:
    with pytest.raises(ApiFailure) as refused:
        await _fetched(stack, job_id, company, template_id)
    return refused.value


async def test_an_app_nodes_secret_value_travels_by_name_and_reaches_its_job(
    nats_url: str, database_url: str
) -> None:
    ring = keyring(new_key())
    async with tenant_stack(nats_url, database_url, ring) as stack:
        app = await _app(stack)
        dispatched = await Dispatched().listen(stack)
        job, message = await run_flow_node(
            stack, dispatched, {"name": "a", "app": app, "env": {"PASSWORD": RUN}}
        )
        assert job.status is Status.PROCESSED, job.reason
        assert job.stdout == _printed(RUN), "the flow's value, fetched, wins over the app's default"

        assert message.template_id is None and message.secrets == ["PASSWORD"]
        assert "PASSWORD" not in message.env and message.env["USER_NAME"] == "demo"
        assert message.argv[-1] == "{PASSWORD}", "the executor fills it in"
        assert not any(RUN.encode() in raw for raw in dispatched.raw)
        assert RUN.encode() not in await _stream_bytes(stack.bus.js)
        held = await _tables_holding(database_url, RUN)
        assert sorted(held) == ["flow_definition", "flow_run"], "only the flow's own spec, not its job's"

        job_id, sealed = await _sealed_row(database_url)
        assert job_id == job.id and ring.open_job_field(job_id, "PASSWORD", sealed) == RUN
        [row] = await _rows(database_url, "SELECT company, template_id FROM job_secret")
        assert (row["company"], row["template_id"]) == ("acme", None)

        ended = await _refusal(stack, job.id)
        assert ended.code == 409 and "has ended" in ended.message


async def test_only_its_job_of_its_company_is_served_the_value(nats_url: str, database_url: str) -> None:
    ring = keyring(new_key())
    async with tenant_stack(nats_url, database_url, ring) as stack:
        app = await _app(stack)
        await stack.company("globex")
        template = await stack.template(name="t", app=app, company="acme", interv="d", env={})
        spec = FlowSpec.model_validate(
            {"name": "secretive", "company": "acme", "nodes": [{"name": "a", "app": app}]}
        )
        env = {"PASSWORD": RUN, "USER_NAME": "eve"}
        sealed, clear = await sealed_and_clear(database_url, spec, env, ring)
        sealed_id = sealed.job_id
        assert sealed.secrets == ["PASSWORD"] and sealed.env["USER_NAME"] == "eve"
        assert RUN not in sealed.model_dump_json()
        assert clear.env["PASSWORD"] == RUN and clear.masked == ["PASSWORD"], "without a keyring, as before"
        assert clear.secrets == []

        assert await _fetched(stack, sealed_id) == {"PASSWORD": RUN}
        assert await _fetched(stack, adhoc_job_id()) == {}, "another job gets nothing"
        assert await _fetched(stack, sealed_id, "globex") == {}, "nor another company's request"
        assert await _fetched(stack, sealed_id, template_id=template.id) == {}, "nor one naming a template"

        scheduled = await stack.final_job((await stack.run(template.id)).job_id)
        assert scheduled.stdout == _printed(DEFAULT), "a template's job gets the app default"
        refused = await _refusal(stack, scheduled.id, "globex")
        assert (
            refused.code == 403 and f"job {scheduled.id} is not a job of company 'globex'" in refused.message
        )
        refused = await _refusal(stack, scheduled.id)
        assert refused.code == 403 and "runs an application directly" in refused.message
        unknown = await _refusal(stack, sealed_id, "initech")
        assert unknown.code == 404, unknown.message


async def test_a_node_without_a_value_runs_with_the_apps_default_masked(
    nats_url: str, database_url: str
) -> None:
    async with tenant_stack(nats_url, database_url, keyring(new_key())) as stack:
        app = await _app(stack)
        dispatched = await Dispatched().listen(stack)
        job, message = await run_flow_node(stack, dispatched, {"name": "a", "app": app})
        assert job.status is Status.PROCESSED and job.stdout == _printed(DEFAULT), job.reason
        assert message.secrets == [] and message.masked == ["PASSWORD"] and message.env["PASSWORD"] == DEFAULT
        assert await _rows(database_url, "SELECT 1 FROM job_secret") == []


async def test_a_retried_run_of_a_failed_app_node_gets_its_value(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    async with tenant_stack(nats_url, database_url, keyring(new_key())) as stack:
        app = await _app(stack, f"{SCRIPT}; test -e {gate}")
        spec = FlowSpec.model_validate(
            {
                "name": "gated",
                "company": "acme",
                "nodes": [{"name": "a", "app": app, "env": {"PASSWORD": RUN}}],
            }
        )
        run = await stack.client.call("flow.run", FlowRunRequest(spec=spec, launched_by="test"), FlowRun)
        first = await _ended_node(stack, run.id)
        failed = await stack.final_job(first)
        assert failed.status is Status.ERROR and failed.stdout == _printed(RUN), failed.reason

        async def letters() -> DeadLetterList | None:
            found = await stack.client.call("dlq.list", DeadLetterQuery(company="acme"), DeadLetterList)
            return found if found.dead_letters else None

        [letter] = (await eventually(letters, 30.0, "the job's dead letter")).dead_letters
        with pytest.raises(ApiFailure, match="jetjobs flow retry"):  # a flow's job is re-run by its flow
            await stack.client.call("dlq.replay", DeadLetterRef(id=letter.id), Replayed)

        gate.touch()
        await stack.client.call("flow.retry", FlowRef(id=run.id), FlowRun)
        second = await _ended_node(stack, run.id)
        assert second != first
        retried = await stack.final_job(second)
        assert retried.status is Status.PROCESSED and retried.stdout == _printed(RUN), retried.reason
        assert sorted(await _tables_holding(database_url, RUN)) == ["flow_definition", "flow_run"]


async def _ended_node(stack: Stack, run_id: str) -> str:
    """The job of the run's only node, once the run has ended."""

    async def ended() -> str | None:
        found = await stack.client.call("flow.get", FlowRef(id=run_id), FlowRun)
        return found.nodes[0].job_id if found.status is not FlowStatus.STARTED else None

    return await eventually(ended, 30.0, f"flow run {run_id} to end")


async def test_rotate_key_reseals_an_app_nodes_value(nats_url: str, database_url: str) -> None:
    old, new = new_key(), new_key()
    async with tenant_stack(nats_url, database_url, keyring(old)) as stack:
        app = await _app(stack)
        dispatched = await Dispatched().listen(stack)
        job, _ = await run_flow_node(stack, dispatched, {"name": "a", "app": app, "env": {"PASSWORD": RUN}})
        assert job.stdout == _printed(RUN), job.reason
    assert await rotate_key(database_url, keyring(new, old)) == Rotated(0, 0, 1)
    job_id, sealed = await _sealed_row(database_url)
    assert job_id == job.id and sealed.key_id == keyring(new).primary
    assert keyring(new).open_job_field(job_id, "PASSWORD", sealed) == RUN
