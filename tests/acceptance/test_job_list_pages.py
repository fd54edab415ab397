"""`job.list` a page at a time: four hundred jobs with a 3 kB argv take 1.5 MB, more
than one NATS message holds. `job.list` with `limit` 1000 (which its schema allows)
and `jetjobs job list --limit 1000` used to fail with a 413; a page is now cut to
fit, says `more` and gives `next`, the cursor of the page that follows."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from bus import ApiClient, Bus
from bus.api import ApiServer
from contracts import api
from contracts.api import OPERATIONS, ApiFailure
from contracts.enums import Status
from contracts.records import JobRecord
from tests.acceptance.cli import clean_env, jetjobs
from tests.stack import Stack, eventually, running_stack
from tests.unit.jobs import message

JOBS = 400
ARGV = ["sh", "-c", "echo " + "x" * 3000]
IDLE_POOL = "nobody-serves"
"""A pool no executor takes from: the jobs stay dispatched while the test reads them."""


@pytest.fixture
async def stack(nats_url: str, database_url: str):  # type: ignore[no-untyped-def]
    async with running_stack(nats_url, database_url, scheduler=False) as running:
        yield running


async def _dispatch(stack: Stack) -> list[str]:
    """Publish JOBS jobs, four dispatched in each second (so pages meet jobs of the same
    instant, ordered by id); their ids newest first, as the store orders them."""
    start = datetime.now(UTC) - timedelta(hours=1)
    jobs = [
        message(
            job_id=str(uuid.uuid4()),
            pool=IDLE_POOL,
            argv=ARGV,
            timeout=3600,
            dispatched_at=start + timedelta(seconds=i // 4),
        )
        for i in range(JOBS)
    ]
    await stack.bus.publisher.dispatch(jobs)

    async def recorded() -> list[str] | None:
        conn = await asyncpg.connect(stack.database_url)
        try:
            rows = await conn.fetch("SELECT id FROM job ORDER BY created_at DESC, id DESC")
        finally:
            await conn.close()
        return [r["id"] for r in rows] if len(rows) == JOBS else None

    return await eventually(recorded, 30, f"{JOBS} jobs recorded")


async def test_a_long_job_list_comes_page_by_page(stack: Stack) -> None:
    await stack.company("acme")
    newest_first = await _dispatch(stack)
    listed: list[str] = []
    pages: list[int] = []
    after: str | None = None
    while True:
        query = api.JobQuery(company="acme", limit=1000, after=after)
        reply = await stack.client.call("job.list", query, api.JobList)
        listed += [job.id for job in reply.jobs]
        pages.append(len(reply.jobs))
        assert all(job.argv == ARGV for job in reply.jobs)
        if not reply.more:
            assert reply.next is None
            break
        assert reply.next is not None
        after = reply.next
    assert len(pages) > 1, "400 jobs of 3 kB do not fit in one message"
    assert listed == newest_first, "every job once, newest first, across the pages"
    small = await stack.client.call("job.list", api.JobQuery(company="acme", limit=7), api.JobList)
    assert [job.id for job in small.jobs] == newest_first[:7] and small.more
    last = await stack.client.call(
        "job.list", api.JobQuery(company="acme", limit=7, after=small.next), api.JobList
    )
    assert [job.id for job in last.jobs] == newest_first[7:14]
    with pytest.raises(ApiFailure) as refused:
        await stack.client.call("job.list", api.JobQuery(after="not-a-cursor"), api.JobList)
    assert refused.value.code == 400 and "is not a cursor of this list" in refused.value.message


async def test_job_list_on_the_command_line_reads_pages_up_to_its_limit(stack: Stack) -> None:
    await stack.company("acme")
    newest_first = await _dispatch(stack)
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    for limit, wanted in ((1000, newest_first), (350, newest_first[:350])):
        listed = await jetjobs("--json", "job", "list", "--company", "acme", "--limit", str(limit), env=env)
        assert listed.code == 0, listed
        assert [job["id"] for job in json.loads(listed.out)] == wanted


async def test_an_answer_too_large_says_what_is_true(nats_url: str) -> None:
    """Not every list is cut to fit (nor is every answer a list): the 413 says the
    answer is too large, and how a list is asked for in smaller pages."""

    async def huge(request: object) -> api.JobList:
        job = JobRecord(id="j1", company="acme", status=Status.DISPATCHED, attempt=1, final=False, argv=ARGV)
        return api.JobList(jobs=[job] * JOBS)

    bus = await Bus.attach(nats_url, "big-answers")
    server = ApiServer(dict.fromkeys(OPERATIONS, huge))
    await server.start(bus.nc, "0.0.0", 0)
    try:
        with pytest.raises(ApiFailure) as refused:
            await ApiClient(bus.nc, timeout=5).call("job.list", api.JobQuery(), api.JobList)
    finally:
        await server.stop()
        await bus.close()
    assert refused.value.code == 413
    assert "cut to fit" not in refused.value.message and "one item alone" not in refused.value.message
    assert "for a list, ask for fewer items with `limit`" in refused.value.message
