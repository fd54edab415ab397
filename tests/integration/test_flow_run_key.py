"""`flow.run` with an idempotency key: a request sent again gets its first run."""

from __future__ import annotations

import asyncio

import asyncpg

from contracts.flows import FlowRun, FlowRunRequest, FlowSpec, FlowStatus
from tests.integration.test_flows import ended, flows, node


def _spec(app: str) -> FlowSpec:
    return FlowSpec.model_validate(
        {"name": "release", "company": "acme", "nodes": [node(app, "build", "echo built")]}
    )


async def _runs(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM flow_run"))
    finally:
        await conn.close()


async def test_the_same_key_gives_the_first_run(nats_url: str, database_url: str) -> None:
    async with flows(nats_url, database_url) as (stack, engine, app):

        async def run(request: FlowRunRequest) -> FlowRun:
            return await stack.client.call("flow.run", request, FlowRun)

        inline = FlowRunRequest(spec=_spec(app), key="release-1.4")
        racing = await asyncio.gather(*(run(inline) for _ in range(4)))
        first = racing[0]
        assert {r.id for r in racing} == {first.id}
        assert [r.existing for r in racing].count(None) == 1, "one request started it, the rest found it"
        done = await ended(engine, first.id)
        assert done.status is FlowStatus.FINISHED

        saved = await run(FlowRunRequest(company="acme", name="release", key="release-1.4"))
        assert (saved.id, saved.existing, saved.status) == (first.id, True, FlowStatus.FINISHED)
        assert await _runs(database_url) == 1

        other = await run(FlowRunRequest(company="acme", name="release", key="release-1.5"))
        assert other.id != first.id and other.existing is None
        unkeyed = await run(FlowRunRequest(company="acme", name="release"))
        assert unkeyed.id not in (first.id, other.id)
        assert await _runs(database_url) == 3


async def test_a_request_that_finds_its_run_saves_nothing(nats_url: str, database_url: str) -> None:
    """Requests racing with one key but different files: the saved flow stays the
    one the started run runs (a later `flow run acme/release` runs that)."""
    async with flows(nats_url, database_url) as (stack, _, app):
        variants = [
            FlowSpec.model_validate(
                {"name": "release", "company": "acme", "nodes": [node(app, "build", f"echo v{i}")]}
            )
            for i in range(4)
        ]
        runs = await asyncio.gather(
            *(stack.client.call("flow.run", FlowRunRequest(spec=v, key="r-9"), FlowRun) for v in variants)
        )
        assert len({run.id for run in runs}) == 1
        conn = await asyncpg.connect(database_url)
        try:
            saved = await conn.fetchval("SELECT spec::text FROM flow_definition WHERE name = 'release'")
            started = await conn.fetchval("SELECT spec::text FROM flow_run WHERE id = $1", runs[0].id)
        finally:
            await conn.close()
        assert FlowSpec.model_validate_json(saved) == FlowSpec.model_validate_json(started)
