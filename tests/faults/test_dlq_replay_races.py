"""Replaying a dead letter while the store's record lags behind the bus, or after a
cancel that came as the job failed: the replay runs as a new attempt, or is refused
saying why, never queued to be dropped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bus import last_event
from contracts.api import ApiFailure
from contracts.enums import Status
from contracts.lifecycle import CancelReply, DeadLetterRef, Replayed
from contracts.messages import JobEvent
from tests.faults.harness import Faults, faults
from tests.faults.test_job_cancel import cancel, other_event, stalled, template
from tests.stack import eventually

pytestmark = pytest.mark.timeout(120)

THIRD_SUCCEEDS = "-c 'n=$(cat {LEDGER} 2>/dev/null | wc -l); echo run >> {LEDGER}; [ $n -ge 2 ]'"


@pytest.fixture
async def f(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[Faults]:
    async with faults(nats_url, database_url, tmp_path) as harness:
        yield harness


async def ended_on_the_bus(f: Faults, job_id: str) -> JobEvent:
    async def ended() -> JobEvent | None:
        latest = await last_event(f.bus.js, "acme", job_id)
        return latest if latest is not None and latest.final else None

    return await eventually(ended, 20, f"job {job_id} to end on the bus")


async def letter_of(f: Faults, job_id: str) -> int:
    async def recorded() -> int | None:
        found = await f.rows("SELECT id FROM dead_letter WHERE job_id = $1", job_id)
        return int(found[0]["id"]) if found else None

    return await eventually(recorded, 20, f"job {job_id}'s dead letter to be recorded")


async def test_a_replay_while_the_record_lags_comes_after_every_attempt_the_bus_has_seen(
    f: Faults, tmp_path: Path
) -> None:
    """The record still showed attempt 1 when attempt 2 had failed on the bus: the
    replay took attempt 2 again, and its success was fenced off as that attempt's."""
    ledger = tmp_path / "ledger"
    await f.ready(f.executor(slots=2))
    stack, template_id = await template(f, THIRD_SUCCEEDS, env={"LEDGER": str(ledger)}, retries=1)
    async with stalled(f, other_event()):
        job_id = (await stack.run(template_id)).job_id
        failed = await ended_on_the_bus(f, job_id)
        assert (failed.attempt, failed.status) == (2, Status.ERROR)
        replayed = await stack.client.call(
            "dlq.replay", DeadLetterRef(id=await letter_of(f, job_id)), Replayed
        )
        assert replayed.attempt == 3
    job = (await f.all_final([job_id], 30))[job_id]
    assert (job["status"], job["attempt"]) == ("processed", 3)
    assert ledger.read_text().split() == ["run"] * 3


async def test_a_replay_of_a_job_whose_cancel_is_kept_is_refused_saying_why(
    f: Faults, tmp_path: Path
) -> None:
    """A cancel that reached the job as it failed stays on the cancels board, and every
    executor refused the replay unrun, while the replay answered success."""
    ledger = tmp_path / "ledger"
    await f.ready(f.executor(slots=2))
    stack, template_id = await template(f, "-c 'echo run >> {LEDGER}; exit 3'", env={"LEDGER": str(ledger)})
    async with stalled(f, other_event()):
        job_id = (await stack.run(template_id)).job_id
        await ended_on_the_bus(f, job_id)
        await eventually(lambda: f.status(job_id), 10, "the dispatch to be recorded")
        reply: CancelReply = await cancel(stack.client, job_id)
        assert reply.state != "queued", reply
    letter = await letter_of(f, job_id)
    with pytest.raises(ApiFailure) as refused:
        await stack.client.call("dlq.replay", DeadLetterRef(id=letter), Replayed)
    assert refused.value.code == 409
    assert f"job {job_id} was cancelled (cancelled by request)" in refused.value.message
    assert "a replay would not run" in refused.value.message
    assert ledger.read_text().split() == ["run"]
