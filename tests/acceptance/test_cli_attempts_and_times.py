"""`job artifacts --attempt N` for an attempt the job never made is an error saying
how many it made, not an empty listing; `status` shows when failures ended as
every other table shows a time."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from contracts import api
from tests.acceptance.cli import clean_env, jetjobs
from tests.stack import Stack, running_stack

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def stack(nats_url: str, database_url: str):  # type: ignore[no-untyped-def]
    async with running_stack(nats_url, database_url, scheduler=False) as running:
        yield running


async def test_an_attempt_the_job_never_made_is_an_error(stack: Stack, tmp_path: Path) -> None:
    await stack.company("acme")
    document = {
        "name": "reporter",
        "executable": "sh",
        "cmdparams": "-c 'echo done > report.txt; exit 3'",
        "artifacts": ["report.txt"],
    }
    app = await stack.client.call("app.import", api.AppImport(document=document), api.AppImported)
    template = await stack.template(name="once", app=app.app.uuid, company="acme")
    job = await stack.final_job((await stack.run(template.id)).job_id)
    assert job.attempt == 1 and job.status.value == "error", job
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)

    first = await jetjobs("job", "artifacts", job.id, "--attempt", "1", env=env)
    assert first.code == 0 and "report.txt" in first.out, first
    expected = f"jetjobs: error: job {job.id} has no attempt 2: it has 1 attempt\n"
    for out in ((), ("--out", str(tmp_path / "out")), ("--json",)):
        second = await jetjobs("job", "artifacts", job.id, "--attempt", "2", *out, env=env)
        assert (second.code, second.out, second.err) == (1, "", expected), second

    status = await jetjobs("status", env=env)
    assert status.code == 0, status
    failures = status.out.split("last failures\n", 1)[1].splitlines()
    [row] = [line for line in failures if line.startswith(job.id)]
    assert re.search(r"  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  ", row), row
    assert job.end is not None and f"{job.end:%Y-%m-%d %H:%M:%S}" in row, row
