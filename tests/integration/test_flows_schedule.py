"""Flows on a schedule, on real servers: a flow template's every fire is a new
flow run whose id is the slot's, started once however often it is sent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from bus.flows import FLOW_STARTS_CONSUMER, publish_flow_start
from bus.publish import encode
from contracts import api
from contracts import schedule as sc
from contracts.api import ApiFailure
from contracts.flows import (
    FLOWS_STREAM,
    FlowChecked,
    FlowRef,
    FlowRun,
    FlowSpec,
    FlowStart,
    FlowStatus,
    flow_start_subject,
)
from contracts.models import RunTemplate, TemplateSpec
from tests.stack import Stack, eventually, running_stack


def two_steps(app: str) -> FlowSpec:
    return FlowSpec.model_validate(
        {
            "name": "every-second",
            "company": "acme",
            "nodes": [
                {"name": "a", "app": app, "env": {"SCRIPT": "true"}},
                {"name": "b", "app": app, "env": {"SCRIPT": "true"}, "depends": ["a"]},
            ],
        }
    )


async def flow_template(stack: Stack, **values: Any) -> RunTemplate:
    spec = {"name": "flowing", "flow": "every-second", "company": "acme", "interv": "c"}
    return await stack.template(**(spec | {"cron": "* * * * * *"} | values))


async def rows(database_url: str, sql: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def test_a_flow_template_starts_a_run_at_every_fire_each_slot_once(
    nats_url: str, database_url: str
) -> None:
    async with running_stack(nats_url, database_url) as stack:
        await stack.company("acme")
        app = await stack.app("-c ${SCRIPT}")
        saved = await stack.client.call("flow.save", two_steps(app.app.uuid), FlowChecked)
        assert saved.order == ["a", "b"]
        template = await flow_template(stack)
        assert template.flow == "every-second" and template.app is None and template.app_id is None

        async def three_finished() -> list[Any] | None:
            found = await rows(
                database_url,
                "SELECT id, status, launched_by FROM flow_run WHERE launched_by = $1 AND status = 'finished'",
                f"template:{template.id}",
            )
            return found if len(found) >= 3 else None

        await eventually(three_finished, 30, "three scheduled flow runs to finish")
        await stack.client.call(
            "template.update", api.TemplateUpdate(id=template.id, changes={"active": False}), RunTemplate
        )

        async def explained() -> sc.Explanation | None:
            reply = await stack.client.call(
                "template.explain", sc.ExplainRequest(id=template.id, last=50), sc.Explanation
            )
            done = [v for v in reply.slots if v.flow_status == "finished"]
            return reply if len(done) >= 3 else None

        explanation = await eventually(explained, 15, "explain to show the finished flow runs")
    fired = [v.record for v in explanation.slots if v.record.outcome is not sc.SlotOutcome.SKIPPED]
    assert fired and all(r.flow_run and r.job_id is None for r in fired)
    runs = await rows(
        database_url, "SELECT id FROM flow_run WHERE launched_by = $1", f"template:{template.id}"
    )
    assert sorted(r["id"] for r in runs) == sorted(r.flow_run for r in fired if r.flow_run)
    jobs = await rows(
        database_url,
        "SELECT count(*) AS jobs, count(DISTINCT n.run_id) AS runs FROM flow_node n JOIN job j ON j.id = n.job_id "
        "WHERE n.run_id = ANY($1)",
        [r["id"] for r in runs],
    )
    assert jobs[0]["jobs"] == 2 * jobs[0]["runs"]  # each node of each run ran once


async def test_a_slot_sent_again_never_starts_a_second_run(nats_url: str, database_url: str) -> None:
    """A second scheduler (split brain) or a restart sends the slot's start again:
    JetStream drops the copy, and one sent past its dedup window finds the run."""
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        await stack.company("acme")
        app = await stack.app("-c ${SCRIPT}")
        await stack.client.call("flow.save", two_steps(app.app.uuid), FlowChecked)
        template = await flow_template(stack)
        slot = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
        start = FlowStart(
            run_id="0b6f9a52-5cf3-5f0e-9d7a-3f1d2c4b5a69",
            company="acme",
            flow="every-second",
            template_id=template.id,
            slot=slot,
            scheduled_at=slot,
            launched_by=f"template:{template.id}",
        )
        assert await publish_flow_start(stack.bus.publisher, start) is False
        assert await publish_flow_start(stack.bus.publisher, start) is True
        await stack.bus.publisher.publish(flow_start_subject("acme"), encode(start), "past-the-dedup-window")

        async def finished() -> FlowRun | None:
            try:
                run = await stack.client.call("flow.get", FlowRef(id=start.run_id), FlowRun)
            except ApiFailure:  # not started yet
                return None
            return run if run.status is FlowStatus.FINISHED else None

        await eventually(finished, 30, "the scheduled run to finish")

        async def all_taken() -> bool:
            info = await stack.bus.js.consumer_info(FLOWS_STREAM, FLOW_STARTS_CONSUMER)
            return bool(
                info.num_pending == 0 and info.num_ack_pending == 0 and info.delivered.stream_seq == 2
            )

        await eventually(all_taken, 15, "the store to take both stored starts")
        later = await stack.client.call("flow.get", FlowRef(id=start.run_id), FlowRun)
    assert later.status is FlowStatus.FINISHED
    counted = await rows(
        database_url,
        "SELECT (SELECT count(*) FROM flow_run) AS runs, "
        "(SELECT count(*) FROM job_attempt a JOIN flow_node n ON n.job_id = a.job_id) AS attempts",
    )
    assert (counted[0]["runs"], counted[0]["attempts"]) == (1, 2)


async def test_flow_templates_are_checked_and_run_only_as_flows(nats_url: str, database_url: str) -> None:
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        await stack.company("acme")
        app = await stack.app("-c ${SCRIPT}")
        with pytest.raises(ApiFailure, match="no flow 'every-second' in company 'acme': save it first"):
            await flow_template(stack)
        await stack.client.call("flow.save", two_steps(app.app.uuid), FlowChecked)
        template = await flow_template(stack, interv="n", cron=None)
        with pytest.raises(ApiFailure, match="runs flow 'every-second', not a job") as refused:
            await stack.run(template.id)
        assert refused.value.code == 409
        listed = await stack.client.call("template.list", api.CompanyFilter(company="acme"), api.TemplateList)
        assert [t.flow for t in listed.templates] == ["every-second"]
    with pytest.raises(ValueError, match="overlap must be 'allow'"):
        TemplateSpec.model_validate({"name": "x", "flow": "f", "company": "acme", "overlap": "forbid"})
    with pytest.raises(ValueError, match="exactly one of `app`"):
        TemplateSpec.model_validate({"name": "x", "flow": "f", "app": "1", "company": "acme"})
