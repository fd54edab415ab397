"""A job whose message names a secret the store does not hand over never starts:
run without it, it would see the variable empty (and a job that does not require
it would carry on as if nothing were wrong)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus import Layout
from contracts import tenants as t
from contracts.enums import ErrorKind, Status
from executor import ExecutorConfig, ExecutorService
from store.credentials import new_key

from .tenants_stack import keyring, tenant_stack

pytestmark = pytest.mark.timeout(120)

POOL = "late"


async def test_a_secret_the_store_no_longer_provides_ends_the_job_invalid_before_it_runs(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    async with tenant_stack(nats_url, database_url, keyring(new_key())) as stack:
        await stack.company("acme")
        app = await stack.app(f"-c 'touch {ran}; echo \"[$PW]\"'", env={"PW": {"type": "password"}})
        creds = t.CredentialSet(company="acme", name="c", values={"PW": "unserved-secret-3310"})
        await stack.client.call("credential.set", creds, t.CredentialInfo)
        template = await stack.template(name="t", app=str(app.app.id), company="acme", pool=POOL, retries=2)
        assign = t.CredentialAssign(template_id=template.id, name="c")
        await stack.client.call("credential.assign", assign, t.Assigned)

        queued = await stack.run(template.id)  # its message names PW; no executor serves the pool yet
        await stack.client.call("credential.unassign", assign, t.Assigned)
        late = ExecutorService(ExecutorConfig(nats_url=nats_url, pool=POOL, slots=1), Layout())
        await late.start()
        try:
            job = await stack.final_job(queued.job_id)
        finally:
            await late.stop()

    assert (job.status, job.kind) == (Status.ERROR, ErrorKind.INVALID)
    reason = job.reason or ""
    assert "missing secret variables: PW: the store did not provide them" in reason
    assert "README, Upgrading" in reason
    assert [(a.attempt, a.begin) for a in job.attempts] == [(1, None)], "never started, never retried"
    assert not ran.exists(), "the process never ran"
