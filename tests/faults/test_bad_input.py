"""Garbage published by hand to the dispatch subject: dead-lettered, and work goes on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nats.errors import MaxPayloadError
from nats.js.errors import APIError

from bus.infra import MAX_MESSAGE_BYTES
from contracts import subjects as s
from tests.faults.harness import Faults, faults
from tests.stack import eventually

pytestmark = pytest.mark.timeout(60)

SUBJECT = s.dispatch_subject("acme", "default")


@pytest.fixture
async def f(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[Faults]:
    async with faults(nats_url, database_url, tmp_path) as harness:
        yield harness


async def test_bad_messages_are_dead_lettered_and_good_jobs_still_run(f: Faults) -> None:
    runner = f.executor(slots=2)
    await f.ready(runner)
    bad = {
        "bytes": b"\xff\xfe\x00garbage",
        "json": b'{"job_id": "x", ',
        "schema": b'{"job_id": "x1", "company": "acme", "argv": []}',
        "large": b'{"junk": "' + b"a" * (MAX_MESSAGE_BYTES - 4096) + b'"}',
    }
    for i, payload in enumerate(bad.values()):
        await f.bus.js.publish(SUBJECT, payload, headers={"Nats-Msg-Id": f"bad-{i}", "X-Test": "bad"})
    with pytest.raises((MaxPayloadError, APIError)):
        await f.bus.js.publish(SUBJECT, b"x" * (MAX_MESSAGE_BYTES + 1), timeout=5)

    async def letters() -> list[Any] | None:
        rows = await f.rows("SELECT reason, payload, headers FROM dead_letter ORDER BY stream_seq")
        return rows if len(rows) == len(bad) else None

    rows = await eventually(letters, 20, "every bad message to be dead-lettered")
    reasons = [str(r["reason"]) for r in rows]
    assert "undecodable" in reasons[0] or "not valid JSON" in reasons[0]
    assert "not valid JSON" in reasons[1]
    assert "invalid JobMessage" in reasons[2] and "argv" in reasons[2]
    assert "invalid JobMessage" in reasons[3]
    assert all('"X-Test": "bad"' in str(r["headers"]) for r in rows), "original headers kept"

    ids = await f.submit(3, ["true"])
    jobs = await f.all_final(ids, 20)
    assert {j["status"] for j in jobs.values()} == {"processed"}
    assert runner.popen.poll() is None, "the executor is still running"
