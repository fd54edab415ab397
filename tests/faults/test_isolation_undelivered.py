"""A job message published for a pool whose consumer did not exist yet is kept for
nobody (interest retention): its `undelivered` reason says so, instead of asking
for an executor that may well be running."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bus.publish import encode
from contracts import subjects as s
from contracts.messages import JobMessage
from tests.faults.harness import Faults, faults

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def f(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[Faults]:
    async with faults(nats_url, database_url, tmp_path) as harness:
        yield harness


async def test_a_message_kept_for_no_consumer_is_undelivered_for_what_it_was(f: Faults) -> None:
    now = datetime.now(UTC)
    message = JobMessage(
        job_id=uuid.uuid4().hex,
        company="acme",
        pool="fresh",
        argv=["true"],
        scheduled_at=now,
        dispatched_at=now,
        launched_by="a client of its own",
        timeout=1.0,
        timeout_ack=30.0,
        timeout_result=60.0,
    )
    subject = s.dispatch_subject("acme", "fresh")  # as any NATS client would, no consumer made first
    await f.bus.js.publish(subject, encode(message), headers={"Nats-Msg-Id": message.job_id})
    job = (await f.all_final([message.job_id], 20))[message.job_id]
    assert (job["status"], job["kind"]) == ("error", "undelivered")
    assert "its message had already left JETJOBS_DISPATCH" in job["reason"], job["reason"]
    assert "`exec_fresh` most likely did not exist yet" in job["reason"]
    assert "start an executor" not in job["reason"]
