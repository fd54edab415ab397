"""Flow runs too large to list whole in one NATS message: `flow.list` gives
summaries, `flow.get` one run with its nodes and results."""

from __future__ import annotations

import json

import pytest

from contracts.flows import (
    FlowQuery,
    FlowRef,
    FlowRun,
    FlowRunList,
    FlowRunRequest,
    FlowSpec,
    FlowStatus,
    NodeStatus,
)
from tests.acceptance.cli import clean_env, jetjobs
from tests.stack import Stack, eventually, running_stack

WIDE = 900
"""Nodes skipped in each run, each with 400 bytes of env in the definition."""

RESULTS = (
    'i=0; { printf "{"; while [ $i -lt 50 ]; do printf \'"k%d": "%01000d", \' $i 0; i=$((i+1)); done; '
    'printf \'"end": "1"}\'; } > "$JETJOBS_RESULT_FILE"'
)
"""About 50 kB of results."""


@pytest.fixture
async def stack(nats_url: str, database_url: str):  # type: ignore[no-untyped-def]
    async with running_stack(nats_url, database_url, scheduler=False) as running:
        await running.company("acme")
        yield running


def big_flow(app: str) -> FlowSpec:
    """A root with large results, a node that fails, and many nodes skipped after it:
    about 700 kB as a run with its definition, nodes and results."""
    nodes = [
        {"name": "root", "app": app, "env": {"SCRIPT": RESULTS}},
        {"name": "fail", "app": app, "env": {"SCRIPT": "exit 1"}, "depends": ["root"]},
        *(
            {"name": f"n{i:03}", "app": app, "env": {"PAD": "x" * 400}, "depends": ["fail"]}
            for i in range(WIDE)
        ),
    ]
    return FlowSpec.model_validate({"name": "wide", "company": "acme", "nodes": nodes})


async def test_large_flow_runs_are_listed_as_summaries(stack: Stack) -> None:
    app = await stack.app("-c ${SCRIPT}")
    spec = big_flow(app.app.uuid)
    ids = []
    for _ in range(2):
        run = await stack.client.call("flow.run", FlowRunRequest(spec=spec, launched_by="test"), FlowRun)
        ids.append(run.id)

    async def ended(run_id: str) -> FlowRun | None:
        run = await stack.client.call("flow.get", FlowRef(id=run_id), FlowRun)
        return run if run.status is not FlowStatus.STARTED else None

    shown = [await eventually(lambda r=run_id: ended(r), 60, "a wide run to end") for run_id in ids]
    assert all(len(run.result["root"]) == 51 for run in shown), "flow.get has the results"

    listed = await stack.client.call("flow.list", FlowQuery(company="acme"), FlowRunList)
    assert [r.id for r in listed.runs] == list(reversed(ids))
    counts = {NodeStatus.SUCCEEDED: 1, NodeStatus.FAILED: 1, NodeStatus.SKIPPED: WIDE}
    assert all(r.node_counts == counts and r.status is FlowStatus.ERROR for r in listed.runs), listed
    assert all(r.reason == "node(s) failed: fail" for r in listed.runs)

    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    table = await jetjobs("flow", "list", "--company", "acme", env=env)
    assert table.code == 0, table
    assert all(run_id[:8] in table.out for run_id in ids) and f"1/{WIDE + 2}" in table.out, table.out
    as_json = await jetjobs("--json", "flow", "list", env=env)
    assert as_json.code == 0, as_json
    assert [r["node_counts"]["skipped"] for r in json.loads(as_json.out)] == [WIDE, WIDE]
