"""A job that needs credentials while the store cannot reach PostgreSQL: the store
answers secrets.fetch with a 503, which is nobody's fault, so the executor hands the
job back to run once the store is back, instead of failing it for good."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from bus import Layout
from contracts.api import TemplateUpdate
from contracts.enums import ErrorKind, Status
from contracts.models import RunTemplate
from executor import ExecutorConfig, ExecutorService
from jetjobs.embedded import PostgresServer
from store.credentials import new_key
from tests.integration.tenants_stack import keyring, tenant_stack
from tests.integration.test_tenants_credentials import SECRET, _setup

pytestmark = pytest.mark.timeout(120)


async def test_a_job_whose_credentials_cannot_be_fetched_now_runs_once_the_store_is_back(
    nats_url: str, embedded_postgres: PostgresServer
) -> None:
    embedded_postgres.create_database("credentials_outage")
    dsn = embedded_postgres.dsn("credentials_outage")
    async with tenant_stack(nats_url, dsn, keyring(new_key())) as stack:
        template_id = await _setup(stack)
        moved = TemplateUpdate(id=template_id, changes={"pool": "later"})
        await stack.client.call("template.update", moved, RunTemplate)
        job_id = (await stack.run(template_id, MODE="m")).job_id  # no executor of pool `later` yet
        await asyncio.to_thread(embedded_postgres.stop)
        late = ExecutorService(
            ExecutorConfig(nats_url=nats_url, pool="later", slots=1, actor="executor"), Layout()
        )
        await late.start()
        try:
            await asyncio.sleep(3)  # its fetches meet the outage, and it hands the job back
            await asyncio.to_thread(embedded_postgres.restart)
            job = await stack.final_job(job_id, timeout=60)
        finally:
            await late.stop()
    assert (job.status, job.final) == (Status.PROCESSED, True), job.reason
    assert SECRET not in (job.stdout or "") and "********" in (job.stdout or "")
    handed = [a for a in job.attempts or [] if a.kind is ErrorKind.LOST]
    assert handed, "the attempts that met the outage are recorded, handed back"
    assert all("could not fetch the job's credentials" in (a.reason or "") for a in handed)
    assert all("handed back to the pool" in (a.reason or "") for a in handed)
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM dead_letter WHERE job_id = $1", job_id) == 0
    finally:
        await conn.close()
