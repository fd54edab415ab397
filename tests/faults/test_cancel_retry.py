"""`job.cancel` of a job waiting for a later attempt: its message leaves the dispatch
stream as a queued job's does, so no executor started afterwards can run it, not
even one that knows nothing of cancels made before it started (`--bind-only`)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nats.js.errors import NotFoundError

from bus import ApiClient
from contracts import api
from contracts import subjects as s
from contracts.lifecycle import CancelReply
from contracts.messages import JobEvent
from tests.faults.harness import Faults, faults
from tests.stack import eventually

pytestmark = pytest.mark.timeout(150)

FAILS = 'echo run >> "$RUNS"; exit 1'
RUNS_BEFORE_CANCEL = 4
"""The fourth run's retry is due 8 s (±20 %) after it fails: time to cancel it."""


@pytest.fixture
async def f(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[Faults]:
    async with faults(nats_url, database_url, tmp_path) as harness:
        yield harness


async def _waiting_after(f: Faults, job_id: str, attempt: int) -> JobEvent:
    """The error of `attempt` once the record shows the job waiting for its retry."""

    async def recorded() -> JobEvent | None:
        rows = await f.rows(
            "SELECT e.payload FROM job j JOIN job_event e ON e.job_id = j.id AND e.attempt = j.attempt "
            "WHERE j.id = $1 AND j.attempt = $2 AND j.status = 'error' AND e.status = 'error'",
            job_id,
            attempt,
        )
        return JobEvent.model_validate(json.loads(rows[0]["payload"])) if rows else None

    return await eventually(recorded, 60, f"attempt {attempt} to fail")


async def test_a_job_waiting_for_a_later_retry_is_cancelled_and_its_message_removed(
    f: Faults, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    first = f.executor(slots=1)
    await f.ready(first)
    [job_id] = await f.submit(1, ["sh", "-c", FAILS], retries=RUNS_BEFORE_CANCEL, env={"RUNS": str(runs)})
    error = await _waiting_after(f, job_id, RUNS_BEFORE_CANCEL)
    assert error.retry_in is not None and not error.final, "the run left a retry"
    due = error.at + timedelta(seconds=error.retry_in)
    [row] = await f.rows("SELECT stream_seq FROM job_dispatch WHERE job_id = $1", job_id)
    seq = int(row["stream_seq"])
    assert (await f.bus.js.get_msg(s.DISPATCH_STREAM, seq)).data, "its message waits for the retry"

    reply = await ApiClient(f.bus.nc).call("job.cancel", api.JobRef(id=job_id), CancelReply)
    assert reply.state == "queued", "its retry was not due for a while: no executor can have it"
    with pytest.raises(NotFoundError):
        await f.bus.js.get_msg(s.DISPATCH_STREAM, seq)
    job = (await f.all_final([job_id], 20))[job_id]
    assert (job["status"], job["kind"], job["attempt"]) == ("error", "cancelled", RUNS_BEFORE_CANCEL + 1)
    assert job["reason"].startswith("cancelled before it started"), job["reason"]

    first.signal(signal.SIGTERM)
    assert await asyncio.to_thread(first.popen.wait, 30) == 0, first.tail()
    late = f.executor(slots=1, JETJOBS_BIND_ONLY="true")  # it never learns of the cancel
    await f.ready(late)
    await asyncio.sleep(max((due - datetime.now(UTC)).total_seconds(), 0) + 3 * f.ack_wait)
    assert runs.read_text().split() == ["run"] * RUNS_BEFORE_CANCEL, "never run after the cancel"
    assert late.popen.poll() is None, late.tail()
    [after] = await f.rows("SELECT status, kind, attempt FROM job WHERE id = $1", job_id)
    assert (after["status"], after["kind"], after["attempt"]) == (
        "error",
        "cancelled",
        RUNS_BEFORE_CANCEL + 1,
    )
