"""A dead-lettered flow node's job is not replayed on its own: the replay would run
the job outside its flow (the job's record processed, the node still failed, the
run in error and its dependants never run). `jetjobs flow retry RUN` is the way."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts import subjects as s
from contracts.api import ApiFailure
from contracts.flows import FlowSpec, FlowStatus, NodeStatus
from contracts.lifecycle import DeadLetterList, DeadLetterQuery, DeadLetterRecord, DeadLetterRef, Replayed
from tests.acceptance.cli import clean_env, jetjobs
from tests.acceptance.test_cli import one_line_error
from tests.integration.test_flows import ended, flows, node
from tests.stack import Stack, eventually

pytestmark = pytest.mark.timeout(90)


async def _letters(stack: Stack, count: int) -> list[DeadLetterRecord]:
    async def listed() -> list[DeadLetterRecord] | None:
        reply = await stack.client.call("dlq.list", DeadLetterQuery(company="acme"), DeadLetterList)
        return reply.dead_letters if len(reply.dead_letters) >= count else None

    return await eventually(listed, 30, f"{count} dead letter(s) of acme")


async def _refused(stack: Stack, letter: DeadLetterRecord) -> str:
    """The replay's refusal; nothing is dispatched and the letter stays unreplayed."""
    before = (await stack.bus.js.stream_info(s.DISPATCH_STREAM)).state.last_seq
    with pytest.raises(ApiFailure) as refused:
        await stack.client.call("dlq.replay", DeadLetterRef(id=letter.id), Replayed)
    assert refused.value.code == 409, refused.value.message
    assert (await stack.bus.js.stream_info(s.DISPATCH_STREAM)).state.last_seq == before, "nothing dispatched"
    return refused.value.message


async def test_a_flow_nodes_dead_letter_is_refused_and_flow_retry_is_the_way(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    async with flows(nats_url, database_url) as (stack, engine, app):
        spec = FlowSpec.model_validate(
            {
                "name": "nightly",
                "company": "acme",
                "nodes": [
                    node(app, "fetch", f"[ -e {gate} ] || exit 5"),
                    node(app, "load", "true", "fetch"),
                ],
            }
        )
        run = await ended(engine, (await engine.start_run(spec)).id)
        assert run.status is FlowStatus.ERROR
        fetch = next(n for n in run.nodes if n.name == "fetch")
        assert fetch.status is NodeStatus.FAILED and fetch.job_id is not None
        [letter] = await _letters(stack, 1)
        assert letter.job_id == fetch.job_id

        message = await _refused(stack, letter)
        assert f"node 'fetch' of flow run {run.id}" in message
        assert f"`jetjobs flow retry {run.id}`" in message
        cli = await jetjobs(
            "dlq", "replay", str(letter.id), env=clean_env(JETJOBS_NATS_URL=stack.nats_url), timeout=30
        )
        one_line_error(cli, f"`jetjobs flow retry {run.id}`")
        assert (await stack.job(fetch.job_id)).status.value == "error", "the job was not reopened"

        gate.touch()
        await engine.retry(run.id)
        retried = await ended(engine, run.id)
        assert retried.status is FlowStatus.FINISHED, retried
        assert [n.status for n in retried.nodes] == [NodeStatus.SUCCEEDED] * 2

        # The node now holds another job; the old job's letter still says which flow made it.
        assert next(n for n in retried.nodes if n.name == "fetch").job_id != fetch.job_id
        message = await _refused(stack, letter)
        assert "of a run of flow 'nightly'" in message and "jetjobs flow retry RUN" in message
