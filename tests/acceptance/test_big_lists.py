"""Lists that would not fit in one NATS message: jobs with their full output, and
thousands of templates. Each used to end in a 10 s wait and "the store did not
answer"; an answer too large for the server is now a one-line error."""

from __future__ import annotations

import asyncio
import json

import pytest

from bus import ApiClient, Bus
from bus.api import ApiServer
from contracts import api
from contracts.api import OPERATIONS, ApiError, ApiFailure
from tests.acceptance.cli import clean_env, jetjobs
from tests.stack import Stack, running_stack

BIG = "printf %0300000d 0; printf %0300000d 0 >&2"
"""300 kB on each stream: the executor keeps 256 KiB of each, so five jobs hold 2.5 MB."""


@pytest.fixture
async def stack(nats_url: str, database_url: str):  # type: ignore[no-untyped-def]
    async with running_stack(nats_url, database_url, scheduler=False) as running:
        yield running


async def test_jobs_with_large_output_list_and_show(stack: Stack) -> None:
    await stack.company("acme")
    app = await stack.app(f'-c "{BIG}"')
    template = await stack.template(name="big", app=str(app.app.id), company="acme")
    queued = [await stack.run(template.id) for _ in range(5)]
    for job in queued:
        assert (await stack.final_job(job.job_id, timeout=60)).status.value == "processed"
    listed = await stack.jobs(company="acme")
    assert {j.id for j in listed} == {q.job_id for q in queued}
    assert all(j.stdout is None and j.stderr is None for j in listed), "a list leaves output out"
    shown = await stack.job(queued[0].job_id)
    assert shown.stdout is not None and shown.stdout.startswith("0" * 1000)
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    table = await jetjobs("job", "list", "--company", "acme", env=env)
    assert table.code == 0 and all(q.job_id[:8] in table.out for q in queued), table
    status = await jetjobs("status", env=env)
    assert status.code == 0 and "store not answering" not in status.out, status


async def test_templates_are_listed_page_by_page(stack: Stack) -> None:
    await stack.company("acme")
    app = await stack.app("-c true")
    for start in range(0, 520, 40):
        await asyncio.gather(
            *(
                stack.template(name=f"t{i:04}", app=str(app.app.id), company="acme")
                for i in range(start, min(start + 40, 520))
            )
        )
    first = await stack.client.call("template.list", api.TemplateQuery(limit=500), api.TemplateList)
    rest = await stack.client.call("template.list", api.TemplateQuery(offset=500), api.TemplateList)
    assert (len(first.templates), first.more, len(rest.templates), rest.more) == (500, True, 20, False)
    listed = await jetjobs("--json", "template", "list", env=clean_env(JETJOBS_NATS_URL=stack.nats_url))
    assert listed.code == 0, listed
    assert [t["name"] for t in json.loads(listed.out)] == [f"t{i:04}" for i in range(520)]


async def test_an_answer_too_large_for_nats_is_a_clear_error(nats_url: str) -> None:
    async def huge(request: object) -> ApiError:
        return ApiError(error="x" * 2_000_000, code=0)

    bus = await Bus.attach(nats_url, "big-answers")
    server = ApiServer(dict.fromkeys(OPERATIONS, huge))
    await server.start(bus.nc, "0.0.0", 0)
    try:
        with pytest.raises(ApiFailure) as refused:
            await ApiClient(bus.nc, timeout=5).call("company.list", api.CompanyFilter(), api.CompanyList)
        assert refused.value.code == 413
        assert "more than this NATS server takes in one message" in refused.value.message
    finally:
        await server.stop()
        await bus.close()
