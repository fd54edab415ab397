"""`template.run` with an idempotency key: a request sent again gets its first run's job."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pydantic import ValidationError

from contracts import api
from contracts import subjects as s
from contracts.models import RunTemplate
from tests.integration.test_store import Harness, _count, eventually, harness, setup_template


@pytest.fixture
async def h(nats_url: str, database_url: str) -> AsyncIterator[Harness]:
    async with harness(nats_url, database_url) as running:
        yield running


async def _dispatched(h: Harness) -> int:
    return (await h.bus.js.stream_info(s.DISPATCH_STREAM)).state.messages


async def _run(h: Harness, template: int, key: str | None) -> api.JobQueued:
    return await h.call("template.run", api.RunNow(id=template, key=key), api.JobQueued)


async def test_the_same_key_gives_the_first_runs_job(h: Harness) -> None:
    made = await setup_template(h)
    first = await _run(h, made.id, "nightly-2026-12-07")
    assert first.existing is None
    await eventually(lambda: _recorded(h, first.job_id))
    again = await _run(h, made.id, "nightly-2026-12-07")
    assert (again.job_id, again.existing) == (first.job_id, True)
    assert await _count(h, "job") == 1
    assert await _dispatched(h) == 1, "the second request published nothing"
    other = await _run(h, made.id, "nightly-2026-12-08")
    assert other.job_id != first.job_id and other.existing is None
    assert await _count(h, "job") == 2


async def test_requests_racing_with_one_key_queue_one_job(h: Harness) -> None:
    made = await setup_template(h)
    replies = await asyncio.gather(*(_run(h, made.id, "deploy-42") for _ in range(6)))
    assert len({r.job_id for r in replies}) == 1
    assert [r.existing for r in replies].count(None) == 1, "one request queued it, the rest found it"
    await eventually(lambda: _recorded(h, replies[0].job_id))
    assert await _count(h, "job") == 1
    assert await _dispatched(h) == 1


async def test_a_key_names_a_run_of_one_template_only(h: Harness) -> None:
    first = await setup_template(h)
    second = await setup_template(h, name="greet-again")
    one = await _run(h, first.id, "k")
    two = await _run(h, second.id, "k")
    assert one.job_id != two.job_id
    assert two.existing is None


async def test_a_retry_after_the_template_was_deleted_still_finds_its_job(h: Harness) -> None:
    made = await setup_template(h)
    first = await _run(h, made.id, "once")
    await eventually(lambda: _recorded(h, first.job_id))
    await h.call("template.delete", api.TemplateRef(id=made.id), RunTemplate)
    again = await _run(h, made.id, "once")
    assert (again.job_id, again.existing) == (first.job_id, True)


async def test_runs_without_a_key_are_each_a_new_job(h: Harness) -> None:
    made = await setup_template(h)
    ids = {(await _run(h, made.id, None)).job_id for _ in range(2)}
    assert len(ids) == 2


def test_an_empty_or_huge_key_is_refused() -> None:
    for key in ("", "k" * 201):
        with pytest.raises(ValidationError):
            api.RunNow(id=1, key=key)


async def _recorded(h: Harness, job_id: str) -> bool:
    return await h.db.job_by_id(job_id) is not None
