"""PostgreSQL hung under a running store (SIGSTOP: its connections stay open and nothing
answers). Every API call that needs it answers 503 before its caller gives up, and says
"nothing was done" only of a call that sent PostgreSQL nothing; a call that needs no
PostgreSQL answers as usual; a run the caller saw refused does not run once PostgreSQL
resumes, so a retry does not run it twice; the jobs and events published meanwhile are
all recorded once it resumes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel
from structlog.testing import capture_logs

from bus import ApiClient, Bus
from contracts import api
from contracts.api import ApiFailure
from contracts.enums import Status
from contracts.lifecycle import RunnerList, RunnerQuery
from contracts.messages import JobEvent
from contracts.models import Company, RunTemplate, TemplateSpec
from jetjobs.embedded import PostgresServer
from tests.acceptance.cli import clean_env, jetjobs
from tests.stack import eventually, make_store
from tests.unit.jobs import message

pytestmark = pytest.mark.timeout(60)

WAIT = 3.0
"""The callers' timeout: the store answers within 2.4 s (a fifth is kept for the answer)."""
IDLE_POOL = "nobody-serves"
"""A pool no executor takes from: the jobs published during the hang stay acknowledged."""
WAITED = "PostgreSQL did not answer within 2.4 s; "
NOTHING_DONE = WAITED + "nothing was done: try again once it answers"
MAYBE_DONE = WAITED + "the store stopped waiting, but a change it had sent may still be made"


@contextmanager
def hung(server: PostgresServer) -> Iterator[None]:
    """The postmaster and every backend stopped (found by the data dir's postmaster.pid),
    and continued afterwards whatever happened."""
    postmaster = int((server.data_dir / "postmaster.pid").read_text().split()[0])
    found = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False)
    pids = [postmaster, *map(int, found.stdout.split())]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@pytest.fixture
async def template(nats_url: str, embedded_postgres: PostgresServer) -> AsyncIterator[RunTemplate]:
    """A store on a PostgreSQL of its own (which the test hangs), with company `demo`
    and a template to run."""
    embedded_postgres.create_database("api_hang")
    store = make_store(nats_url, embedded_postgres.dsn("api_hang"))
    await store.start()
    try:
        bus = await Bus.attach(nats_url, "hang-setup")
        try:
            client = ApiClient(bus.nc)
            await client.call("company.create", Company(code="demo", name="Demo"), Company)
            app = {"name": "greet", "executable": "echo", "cmdparams": "hi"}
            imported = await client.call("app.import", api.AppImport(document=app), api.AppImported)
            spec = TemplateSpec(company="demo", name="greet", app=imported.app.uuid)
            made = await client.call("template.create", spec, RunTemplate)
        finally:
            await bus.nc.close()
        yield made
    finally:
        await store.stop()


async def _answer(client: ApiClient, op: str, request: BaseModel) -> ApiFailure | BaseModel:
    try:
        return await client.call(op, request, api.OPERATIONS[op].reply)
    except ApiFailure as failure:
        return failure


def _published() -> tuple[list[str], list[JobEvent]]:
    now = datetime.now(UTC)
    ids = [f"during-hang-{n}" for n in range(10)]
    events = [
        JobEvent(job_id=job_id, company="demo", attempt=1, status=Status.ACKNOWLEDGED, at=now, runner="r1")
        for job_id in ids
    ]
    return ids, events


async def test_a_hung_postgres_is_answered_in_time_and_refused_work_is_not_done_later(
    nats_url: str, embedded_postgres: PostgresServer, template: RunTemplate
) -> None:
    bus = await Bus.attach(nats_url, "hang-test")
    try:
        quick = ApiClient(bus.nc, timeout=WAIT)
        ids, events = _published()
        calls: list[tuple[str, BaseModel]] = [
            ("template.run", api.RunNow(id=template.id)),
            ("company.create", Company(code="late", name="Late")),
            *[("job.list", api.JobQuery(company="demo"))] * 12,  # more than the pool's connections
        ]
        with capture_logs() as logs, hung(embedded_postgres):
            await bus.publisher.dispatch(
                [message(job_id=i, company="demo", pool=IDLE_POOL, timeout=3600) for i in ids]
            )
            for event in events:
                await bus.publisher.event(event)
            answers = await asyncio.gather(*(_answer(quick, op, request) for op, request in calls))
            runners = await quick.call("runner.list", RunnerQuery(), RunnerList)  # needs no PostgreSQL
            cli = await jetjobs("job", "list", "--company", "demo", env=clean_env(JETJOBS_NATS_URL=nats_url))

        told = {}
        for (op, _), answer in zip(calls, answers, strict=True):
            assert isinstance(answer, ApiFailure) and answer.code == 503, (op, answer)
            done = answer.message.removeprefix(f"{op}: ")
            assert done == NOTHING_DONE or done.startswith(MAYBE_DONE), answer.message
            told[op] = done
        assert told["job.list"] == NOTHING_DONE, "the pool was full: the last calls sent nothing"
        assert runners.runners == []
        error = cli.err.strip().splitlines()[-1]
        assert cli.code == 1 and error.startswith("jetjobs: error: job.list: "), cli
        assert "PostgreSQL" in error and "Traceback" not in cli.err, cli.err

        async def recorded() -> bool:
            try:
                found = await quick.call("job.list", api.JobQuery(company="demo", limit=50), api.JobList)
            except ApiFailure as failure:
                assert failure.code == 503, failure.message
                return False
            return sorted(j.id for j in found.jobs if j.status is Status.ACKNOWLEDGED) == sorted(ids)

        await eventually(recorded, 20.0, "the jobs and events published during the hang to be recorded")
        runs = await quick.call(
            "job.list", api.JobQuery(company="demo", template_id=template.id), api.JobList
        )
        assert runs.jobs == [], "a run its caller saw refused ran once PostgreSQL resumed"
        companies = await quick.call("company.list", api.CompanyQuery(), api.CompanyList)
        if told["company.create"] == NOTHING_DONE:
            assert [c.code for c in companies.companies] == ["demo"]
        assert not [e for e in logs if e["event"] in ("api.failed", "job.queued")]
        assert {e["log_level"] for e in logs if e["event"] == "store.db_unavailable"} == {"warning"}
    finally:
        await bus.nc.close()
