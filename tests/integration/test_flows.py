"""Flows end to end on real servers: a DAG of jobs advanced by job outcomes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from contracts import subjects as s
from contracts.api import ApiFailure
from contracts.flows import (
    FlowCancelled,
    FlowChecked,
    FlowEvent,
    FlowRef,
    FlowRun,
    FlowRunRequest,
    FlowSpec,
    FlowStatus,
    NodeStatus,
)
from tests.stack import Stack, eventually, running_stack

WRITE = 'printf \'{"%s": "%s"}\' "$KEY" "$VALUE" > "$JETJOBS_RESULT_FILE"'


class Flows:
    """Drives flows through the store's API."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    async def start_run(self, spec: FlowSpec, launched_by: str = "test") -> FlowRun:
        request = FlowRunRequest(spec=spec, launched_by=launched_by)
        return await self.stack.client.call("flow.run", request, FlowRun)

    async def get(self, run_id: str) -> FlowRun:
        return await self.stack.client.call("flow.get", FlowRef(id=run_id), FlowRun)

    async def retry(self, run_id: str) -> FlowRun:
        return await self.stack.client.call("flow.retry", FlowRef(id=run_id), FlowRun)


@asynccontextmanager
async def flows(nats_url: str, database_url: str) -> AsyncIterator[tuple[Stack, Flows, str]]:
    """The stack (its store orchestrates flows) and an app that runs `$SCRIPT`."""
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        await stack.company("acme")
        app = await stack.app("-c ${SCRIPT}")
        yield stack, Flows(stack), app.app.uuid


async def _true(value: object) -> bool:
    return bool(value)


def node(app: str, name: str, script: str, *depends: Any, **env: str) -> dict[str, Any]:
    return {"name": name, "app": app, "env": {"SCRIPT": script, **env}, "depends": list(depends)}


async def ended(engine: Flows, run_id: str, timeout: float = 30.0) -> FlowRun:
    async def probe() -> FlowRun | None:
        run = await engine.get(run_id)
        return run if run.status is not FlowStatus.STARTED else None

    return await eventually(probe, timeout, f"flow run {run_id} to end")


async def job_rows(database_url: str, job_ids: list[str]) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT id, status::text, begin_at, end_at, stdout, "
            "(SELECT count(*) FROM job_attempt a WHERE a.job_id = j.id) AS attempts "
            "FROM job j WHERE id = ANY($1)",
            job_ids,
        )
    finally:
        await conn.close()
    return {row["id"]: row for row in rows}


async def inbox_empty(database_url: str) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM flow_inbox") == 0
    finally:
        await conn.close()


async def test_a_diamond_passes_results_downstream(nats_url: str, database_url: str) -> None:
    seen: list[FlowEvent] = []

    async def receive(msg: Any) -> None:
        seen.append(FlowEvent.model_validate_json(msg.data))

    async with flows(nats_url, database_url) as (stack, engine, app):
        await stack.bus.nc.subscribe("jetjobs.events.acme.flow.>", cb=receive)
        show = 'echo "A=$JETJOBS_RESULT_A_X B=$JETJOBS_RESULT_B_Y C=$JETJOBS_RESULT_C_Z S=$SHARED"; ' + WRITE
        spec = FlowSpec.model_validate(
            {
                "name": "diamond",
                "company": "acme",
                "env_vars": {"SHARED": "yes"},
                "nodes": [
                    node(app, "a", WRITE, KEY="x", VALUE="1"),
                    node(app, "b", "sleep 0.3; " + WRITE, "a", KEY="y", VALUE="2"),
                    node(app, "c", WRITE, "a", KEY="z", VALUE="3"),
                    node(app, "d", show, "b", "c", KEY="w", VALUE="4"),
                ],
            }
        )
        run = await ended(engine, (await engine.start_run(spec, "test")).id)
        await eventually(
            lambda: _true(seen and seen[-1].status is FlowStatus.FINISHED), 5, "the last flow event"
        )
    assert run.status is FlowStatus.FINISHED, run
    steps = [(e.node, e.node_status) for e in seen if e.node is not None]
    assert steps.index(("d", NodeStatus.DISPATCHED)) > steps.index(("b", NodeStatus.SUCCEEDED))
    assert seen[0].status is FlowStatus.STARTED and seen[-1].result == run.result
    assert run.result == {"a": {"x": "1"}, "b": {"y": "2"}, "c": {"z": "3"}, "d": {"w": "4"}}
    jobs = await job_rows(database_url, [n.job_id for n in run.nodes if n.job_id])
    by_node = {n.name: jobs[n.job_id] for n in run.nodes if n.job_id}
    assert by_node["d"]["stdout"].strip() == "A=1 B=2 C=3 S=yes"
    assert by_node["d"]["begin_at"] >= max(by_node["b"]["end_at"], by_node["c"]["end_at"])
    assert all(row["attempts"] == 1 for row in jobs.values())


async def test_a_failure_runs_the_failure_branch_and_retry_finishes(
    nats_url: str, database_url: str, tmp_path: Any
) -> None:
    flag = tmp_path / "second-time"
    flaky = f'if [ -e "{flag}" ]; then exit 0; fi; touch "{flag}"; exit 3'
    async with flows(nats_url, database_url) as (_, engine, app):
        spec = FlowSpec.model_validate(
            {
                "name": "failing",
                "company": "acme",
                "nodes": [
                    node(app, "a", flaky),
                    node(app, "b", "true", "a"),
                    node(app, "c", "true", "b"),
                    node(app, "alert", "true", {"node": "a", "on": "failure"}),
                ],
            }
        )
        first = await ended(engine, (await engine.start_run(spec, "test")).id)
        states = {n.name: n.status for n in first.nodes}
        assert first.status is FlowStatus.ERROR and first.reason == "node(s) failed: a"
        assert states == {
            "a": NodeStatus.FAILED,
            "b": NodeStatus.SKIPPED,
            "c": NodeStatus.SKIPPED,
            "alert": NodeStatus.SUCCEEDED,
        }
        alert_job = next(n.job_id for n in first.nodes if n.name == "alert")
        await engine.retry(first.id)
        second = await ended(engine, first.id)
    assert second.status is FlowStatus.FINISHED, second
    assert all(n.status is NodeStatus.SUCCEEDED for n in second.nodes)
    assert {n.name: n.round for n in second.nodes} == {"a": 2, "b": 1, "c": 1, "alert": 1}
    assert next(n.job_id for n in second.nodes if n.name == "alert") == alert_job


async def test_conditions_on_results_choose_one_branch(nats_url: str, database_url: str) -> None:
    async with flows(nats_url, database_url) as (_, engine, app):
        spec = FlowSpec.model_validate(
            {
                "name": "branches",
                "company": "acme",
                "nodes": [
                    node(app, "check", WRITE, KEY="count", VALUE="42"),
                    node(app, "big", "true", {"node": "check", "when": "check.count > 10"}),
                    node(app, "small", "true", {"node": "check", "when": "check.count <= 10"}),
                    node(app, "after", "true", "small"),
                ],
            }
        )
        run = await ended(engine, (await engine.start_run(spec, "test")).id)
    states = {n.name: n.status for n in run.nodes}
    assert run.status is FlowStatus.FINISHED
    assert states == {
        "check": NodeStatus.SUCCEEDED,
        "big": NodeStatus.SUCCEEDED,
        "small": NodeStatus.SKIPPED,
        "after": NodeStatus.SKIPPED,
    }


async def test_unknown_applications_are_refused_before_anything_runs(
    nats_url: str, database_url: str
) -> None:
    from contracts.api import ApiFailure

    async with flows(nats_url, database_url) as (stack, engine, app):
        spec = FlowSpec.model_validate(
            {"name": "bad", "company": "acme", "nodes": [node(app, "a", "true"), {"name": "b", "app": "999"}]}
        )
        with pytest.raises(ApiFailure, match="node 'b': unknown application '999'"):
            await engine.start_run(spec)
        assert await stack.jobs(company="acme") == []


async def test_nodes_whose_results_would_collide_are_refused_before_anything_runs(
    nats_url: str, database_url: str
) -> None:
    async with flows(nats_url, database_url) as (stack, _engine, app):
        spec = FlowSpec.model_validate(
            {
                "name": "clash",
                "company": "acme",
                "nodes": [node(app, "a-b", "true"), node(app, "a_b", "true")],
            }
        )
        clash = "nodes 'a-b' and 'a_b' would both pass their results as JETJOBS_RESULT_A_B_<KEY>"
        for op, request, reply in (
            ("flow.validate", spec, FlowChecked),
            ("flow.save", spec, FlowChecked),
            ("flow.run", FlowRunRequest(spec=spec, launched_by="test"), FlowRun),
        ):
            with pytest.raises(ApiFailure) as refused:
                await stack.client.call(op, request, reply)
            assert refused.value.code == 400 and clash in refused.value.message, op
        assert await stack.jobs(company="acme") == []


async def test_a_node_whose_job_message_would_not_fit_is_skipped_and_the_flow_goes_on(
    nats_url: str, database_url: str
) -> None:
    """Its message was committed to the outbox and refused by NATS at every send: the
    outbox, which sends in order, stalled every flow of the store behind it."""
    async with flows(nats_url, database_url) as (_stack, engine, app):
        big = "true #" + "x" * 600_000  # in the arguments and in the env: 1.2 MB
        spec = FlowSpec.model_validate(
            {
                "name": "oversized",
                "company": "acme",
                "nodes": [
                    node(app, "big", big),
                    node(app, "after", "true", "big"),
                    node(app, "small", "true"),
                ],
            }
        )
        run = await ended(engine, (await engine.start_run(spec, "test")).id)
        other = await ended(
            engine,
            (
                await engine.start_run(
                    FlowSpec.model_validate(
                        {"name": "next", "company": "acme", "nodes": [node(app, "one", "true")]}
                    ),
                    "test",
                )
            ).id,
        )
    nodes = {n.name: n for n in run.nodes}
    assert nodes["big"].status is NodeStatus.SKIPPED
    assert "more than one NATS message may carry" in (nodes["big"].reason or ""), nodes["big"]
    assert (nodes["after"].status, nodes["small"].status) == (NodeStatus.SKIPPED, NodeStatus.SUCCEEDED)
    assert other.status is FlowStatus.FINISHED


async def test_a_condition_nested_past_the_limit_is_answered_400_not_left_unanswered(
    nats_url: str, database_url: str
) -> None:
    """Parsing it exhausted Python's recursion: the store never answered, and the
    caller waited out its timeout."""
    async with flows(nats_url, database_url) as (stack, _engine, app):
        deep = "(" * 5000 + "a.x" + ")" * 5000
        spec = {"name": "deep", "company": "acme", "nodes": [node(app, "a", "true"), node(app, "b", "true")]}
        spec["nodes"][1]["depends"] = [{"node": "a", "when": deep}]
        msg = await stack.bus.nc.request(
            s.api_subject("flow.validate"), json.dumps(spec).encode(), timeout=10
        )
        headers = msg.headers or {}
        assert headers.get("Nats-Service-Error-Code") == "400", headers
        assert "nested more than 32 deep" in headers["Nats-Service-Error"]


async def test_cancel_publishes_every_node_s_end_before_the_run_s(nats_url: str, database_url: str) -> None:
    """A subscriber that stops at the run's end sees how every node ended; the killed
    jobs' outcomes, coming later, publish nothing more."""
    seen: list[FlowEvent] = []

    async def receive(msg: Any) -> None:
        seen.append(FlowEvent.model_validate_json(msg.data))

    async with flows(nats_url, database_url) as (stack, engine, app):
        spec = FlowSpec.model_validate(
            {
                "name": "slow",
                "company": "acme",
                "nodes": [
                    node(app, "a", "sleep 30"),
                    node(app, "b", "true", "a"),
                    node(app, "c", "sleep 30"),
                    node(app, "d", "true", "c", "b"),
                ],
            }
        )
        run = await engine.start_run(spec)
        await stack.bus.nc.subscribe(f"jetjobs.events.acme.flow.{run.id}", cb=receive)
        jobs = {n.name: n.job_id for n in run.nodes if n.job_id}
        assert set(jobs) == {"a", "c"}

        async def running() -> bool:
            try:
                return all([(await stack.job(j)).status.value == "started" for j in jobs.values()])
            except ApiFailure:  # not recorded yet
                return False

        await eventually(running, 15, "nodes a and c to start")
        reply = await stack.client.call("flow.cancel", FlowRef(id=run.id), FlowCancelled)
        assert sorted(reply.cancelled_jobs) == sorted(jobs.values())
        assert reply.run.status is FlowStatus.CANCELLED
        killed = [await stack.final_job(j) for j in jobs.values()]
        await eventually(
            lambda: _true(any(e.node is None and e.status is FlowStatus.CANCELLED for e in seen)),
            5,
            "the run's end",
        )
        settled = await engine.get(run.id)
        await eventually(lambda: inbox_empty(database_url), 10, "the killed jobs' outcomes to be taken")
        await asyncio.sleep(0.5)  # anything their step published has arrived
    assert all(job.kind is not None and job.kind.value == "cancelled" for job in killed)
    ends = [(e.node, e.node_status, e.reason) for e in seen if e.node is not None]
    assert ends == [
        ("a", NodeStatus.FAILED, "cancelled by request"),
        ("c", NodeStatus.FAILED, "cancelled by request"),
        ("b", NodeStatus.SKIPPED, "cancelled by request"),
        ("d", NodeStatus.SKIPPED, "cancelled by request"),
    ]
    assert seen[-1].node is None and seen[-1].status is FlowStatus.CANCELLED, seen[-1]
    assert all(e.status is FlowStatus.STARTED for e in seen[:-1]), "the run's end is its one last event"
    assert {n.name: n.status for n in settled.nodes} == {
        "a": NodeStatus.FAILED,
        "b": NodeStatus.SKIPPED,
        "c": NodeStatus.FAILED,
        "d": NodeStatus.SKIPPED,
    }


async def test_template_nodes_run_with_the_flow_env_and_stay_in_their_company(
    nats_url: str, database_url: str
) -> None:
    async with flows(nats_url, database_url) as (stack, engine, app):
        await stack.company("other")
        own = await stack.template(name="writer", app=app, company="acme", env={"SCRIPT": WRITE, "KEY": "k"})
        foreign = await stack.template(name="theirs", app=app, company="other", env={"SCRIPT": "true"})
        spec = FlowSpec.model_validate(
            {
                "name": "tpl",
                "company": "acme",
                "nodes": [{"name": "t", "template": own.id, "env": {"VALUE": "v"}}],
            }
        )
        run = await ended(engine, (await engine.start_run(spec)).id)
        assert run.status is FlowStatus.FINISHED and run.result == {"t": {"k": "v"}}
        stolen = FlowSpec.model_validate(
            {"name": "steal", "company": "acme", "nodes": [{"name": "x", "template": foreign.id}]}
        )
        with pytest.raises(
            ApiFailure,
            match=r"node 'x': no template \d+ in company 'acme': a flow runs its own company's templates",
        ):
            await engine.start_run(stolen)
