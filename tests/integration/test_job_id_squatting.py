"""Job ids are predictable (a keyed run's, a slot's): no caller may take one before
its company runs it, by an upload naming any company, or by events of its own."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import pytest

from bus import ApiClient
from contracts import api
from contracts import tenants as t
from contracts.api import ApiFailure
from contracts.dispatch import keyed_job_id
from contracts.enums import Status
from contracts.lifecycle import CancelReply
from contracts.messages import JobEvent
from contracts.records import JobRecord
from store.credentials import new_key
from store.tokens import bootstrap_token
from tests.stack import Stack, eventually

from .tenants_stack import keyring, tenant_stack

KEY = "nightly-7"


def _upload(job_id: str, company: str, content: bytes | None = None) -> t.ArtifactUpload:
    if content is None:
        return t.ArtifactUpload(
            job_id=job_id, company=company, attempt=1, name="out.txt", size=0, sha256="", missing=True
        )
    return t.ArtifactUpload(
        job_id=job_id,
        company=company,
        attempt=7,
        name="out.txt",
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        content=base64.b64encode(content).decode(),
    )


@asynccontextmanager
async def two_companies(nats_url: str, database_url: str) -> AsyncIterator[tuple[Stack, ApiClient, int]]:
    """Companies acme and beta, closed, with tokens; beta's executor runs the jobs, beta's
    template prints its credential. Yields the stack (as the admin of
    both), a client acting as acme's executor, and beta's template id."""
    root = await bootstrap_token(database_url, t.TokenCreate(actor="root", admin=True))
    exec_acme = await bootstrap_token(database_url, t.TokenCreate(actor="exec-acme"))
    exec_beta = await bootstrap_token(database_url, t.TokenCreate(actor="exec-beta"))
    async with tenant_stack(
        nats_url,
        database_url,
        keyring(new_key()),
        executor_actor="exec-beta",
        require_tokens=True,
        token=root.token,
        api_token=exec_beta.token,
    ) as stack:
        for company, executor in (("acme", "exec-acme"), ("beta", "exec-beta")):
            await stack.company(company)
            for actor, role in (("root", "admin"), (executor, "executor")):
                grant = t.ActorGrant(company=company, actor=actor, role=role)
                await stack.client.call("actor.grant", grant, t.ActorList)
        app = await stack.app("-c 'echo \"$PW\"'", env={"PW": {"type": "password"}})
        creds = t.CredentialSet(company="beta", name="c", values={"PW": "beta-secret"})
        await stack.client.call("credential.set", creds, t.CredentialInfo)
        template = await stack.template(name="t", app=str(app.app.id), company="beta")
        assign = t.CredentialAssign(template_id=template.id, name="c")
        await stack.client.call("credential.assign", assign, t.Assigned)
        yield stack, ApiClient(stack.bus.nc, token=exec_acme.token), template.id


async def _run_keyed(stack: Stack, template_id: int, stdout: str = "********\n") -> None:
    """Beta runs its template with the key; the job runs as its own, credential and all."""
    queued = await stack.client.call("template.run", api.RunNow(id=template_id, key=KEY), api.JobQueued)
    job = await stack.final_job(queued.job_id)
    assert job.company == "beta"
    assert job.status is Status.PROCESSED and job.stdout == stdout, (job.status, job.kind, job.reason)


async def test_an_upload_takes_no_job_id_before_its_company_runs_it(nats_url: str, database_url: str) -> None:
    async with two_companies(nats_url, database_url) as (stack, as_exec_acme, template_id):
        job_id = keyed_job_id(template_id, KEY)
        reader = await stack.client.call("token.create", t.TokenCreate(actor="reader-acme"), t.TokenIssued)
        await stack.client.call(
            "actor.grant", t.ActorGrant(company="acme", actor="reader-acme", role="reader"), t.ActorList
        )
        as_reader = ApiClient(stack.bus.nc, token=reader.token)

        with pytest.raises(ApiFailure, match="not recorded as dispatched yet") as unknown:
            await as_reader.call("artifact.put", _upload(job_id, "nosuchco"), t.ArtifactInfo)
        assert unknown.value.code == 503, "no row is made on the caller's word"
        with pytest.raises(ApiFailure, match="not recorded as dispatched yet") as early:
            await as_exec_acme.call("artifact.put", _upload(job_id, "acme", b"forged\n"), t.ArtifactInfo)
        assert early.value.code == 503
        with pytest.raises(ApiFailure) as no_job:
            await as_reader.call("job.cancel", api.JobRef(id=job_id), CancelReply)
        assert no_job.value.code == 404

        await _run_keyed(stack, template_id)
        with pytest.raises(ApiFailure, match="is not a job of company 'acme'") as foreign:
            await as_exec_acme.call("artifact.put", _upload(job_id, "acme", b"forged\n"), t.ArtifactInfo)
        assert foreign.value.code == 403
        listed = await stack.client.call("artifact.list", t.ArtifactQuery(id=job_id), t.ArtifactList)
        assert listed.artifacts == []


async def test_a_job_taken_back_from_early_events_keeps_nothing_of_them(
    nats_url: str, database_url: str
) -> None:
    async with two_companies(nats_url, database_url) as (stack, _, _):
        app = await stack.app("-c 'echo plain'")
        template_id = (await stack.template(name="plain", app=str(app.app.id), company="beta")).id
        job_id = keyed_job_id(template_id, KEY)
        started = JobEvent(
            job_id=job_id, company="acme", attempt=1, status=Status.ACKNOWLEDGED, at=datetime.now(UTC)
        )
        await stack.bus.publisher.event(started)
        squatted = await eventually(lambda: _job_or_none(stack, job_id), what="acme's early row")
        assert squatted.company == "acme"

        with pytest.raises(ApiFailure, match="not recorded as dispatched yet") as refused:
            await stack.client.call("job.cancel", api.JobRef(id=job_id), CancelReply)
        assert refused.value.code == 409
        conn = await asyncpg.connect(database_url)
        try:  # what an upload could leave before uploads needed a dispatched job
            await conn.execute(
                "INSERT INTO artifact (job_id, attempt, name, size, sha256, content) "
                "VALUES ($1, 7, 'out.txt', 7, '', 'forged\n')",
                job_id,
            )
        finally:
            await conn.close()

        await _run_keyed(stack, template_id, "plain\n")
        listed = await stack.client.call("artifact.list", t.ArtifactQuery(id=job_id), t.ArtifactList)
        assert listed.artifacts == []


async def test_another_companys_early_events_do_not_cost_a_job_its_credentials(
    nats_url: str, database_url: str
) -> None:
    async with two_companies(nats_url, database_url) as (stack, _, template_id):
        job_id = keyed_job_id(template_id, KEY)
        early = JobEvent(
            job_id=job_id, company="acme", attempt=1, status=Status.ACKNOWLEDGED, at=datetime.now(UTC)
        )
        await stack.bus.publisher.event(early)
        await eventually(lambda: _job_or_none(stack, job_id), what="acme's early row")
        # beta's executor asks before beta's dispatch is recorded (the store lags behind it)
        fetch = t.SecretsRequest(job_id=job_id, company="beta", template_id=template_id, names=["PW"])
        token = await stack.client.call("token.create", t.TokenCreate(actor="exec-beta"), t.TokenIssued)
        as_exec_beta = ApiClient(stack.bus.nc, token=token.token)
        served = await as_exec_beta.call("secrets.fetch", fetch, t.SecretsReply)
        assert served.values == {"PW": "beta-secret"}
        await _run_keyed(stack, template_id)


async def _job_or_none(stack: Stack, job_id: str) -> JobRecord | None:
    try:
        return await stack.job(job_id)
    except ApiFailure as failure:
        if failure.code != 404:
            raise
        return None
