"""Credentials end to end: encrypted at rest, layered, fetched just in time,
masked in output, never in any stream nor in plain text in Postgres."""

from __future__ import annotations

import asyncpg
import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from bus import ApiClient
from contracts import api
from contracts import tenants as t
from contracts.api import ApiFailure
from contracts.enums import ErrorKind, Status
from store.credentials import new_key
from store.rotation import Rotated, rotate_key
from store.tokens import bootstrap_token
from tests.stack import Stack

from .tenants_stack import keyring, tenant_stack

SECRET = "s3cr3t-Pa55-unique-7781"
CRED_USER = "cred-user-4471"
SCRIPT = 'printf "%s|" "$1" "$API_PASSWORD" "$USER_NAME" "$REGION" "$MODE"'

ENV = {
    "USER_NAME": {"type": "string", "defval": "demo"},
    "API_PASSWORD": {"type": "password", "required": True},
    "REGION": {"type": "string", "defval": "eu"},
    "MODE": {"type": "text", "required": True},
}


async def _setup(stack: Stack) -> int:
    await stack.company("acme")
    app = await stack.app(f"-c '{SCRIPT}' argv0 --pw={{API_PASSWORD}}", env=ENV)
    await stack.client.call(
        "credential.set",
        t.CredentialSet(company="acme", name="abra", values={"API_PASSWORD": SECRET, "USER_NAME": CRED_USER}),
        t.CredentialInfo,
    )
    template = await stack.template(name="t", app=str(app.app.id), company="acme", env={"REGION": "us"})
    await stack.client.call(
        "credential.assign", t.CredentialAssign(template_id=template.id, name="abra"), t.Assigned
    )
    return template.id


async def _stream_bytes(js: JetStreamContext) -> bytes:
    """Every message of every stream on the server (including KV buckets)."""
    found = bytearray()
    for info in await js.streams_info():
        if not info.state.messages:
            continue
        for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
            try:
                msg = await js.get_msg(info.config.name, seq)
            except NotFoundError:
                continue
            found += (msg.data or b"") + repr(msg.headers).encode()
    return bytes(found)


async def _database_text(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        rows = [await conn.fetch(f'SELECT t::text AS r FROM "{r["tablename"]}" t') for r in tables]
        return "\n".join(r["r"] for table in rows for r in table)
    finally:
        await conn.close()


async def test_layered_env_jit_secrets_masked_and_never_stored_in_clear(
    nats_url: str, database_url: str
) -> None:
    ring = keyring(new_key())
    async with tenant_stack(nats_url, database_url, ring) as stack:
        template_id = await _setup(stack)
        env = await stack.client.call("template.env", api.TemplateRef(id=template_id), t.TemplateEnv)
        shown = {e.name: (e.value, e.source) for e in env.entries}
        assert shown["API_PASSWORD"] == ("********", "credential abra")
        assert shown["USER_NAME"] == ("********", "credential abra")
        assert shown["REGION"] == ("us", "template")
        assert shown["MODE"] == (None, "unset") and env.missing == ["MODE"]

        invalid = await stack.final_job((await stack.run(template_id)).job_id)
        assert invalid.status is Status.ERROR and invalid.kind is ErrorKind.INVALID
        assert "MODE" in (invalid.reason or "")

        job = await stack.final_job((await stack.run(template_id, MODE="fast")).job_id)
        assert job.status is Status.PROCESSED, job.reason
        assert job.stdout == "--pw=********|********|********|us|fast|"
        assert all(SECRET not in word for word in job.argv)

        everything = await _stream_bytes(stack.bus.js)
        assert SECRET.encode() not in everything and CRED_USER.encode() not in everything
        stored = await _database_text(database_url)
        assert SECRET not in stored and CRED_USER not in stored
        assert "abra" in stored  # the credential row is there, encrypted


async def test_key_rotation_keeps_values_and_drops_the_old_key(nats_url: str, database_url: str) -> None:
    old, new = new_key(), new_key()
    async with tenant_stack(nats_url, database_url, keyring(old)) as stack:
        template_id = await _setup(stack)
    assert await rotate_key(database_url, keyring(new, old)) == Rotated(1, 0)
    async with tenant_stack(nats_url, database_url, keyring(new)) as stack:
        job = await stack.final_job((await stack.run(template_id, MODE="x")).job_id)
        assert job.status is Status.PROCESSED and job.stdout is not None
        assert job.stdout.startswith("--pw=********|********|")
    async with tenant_stack(nats_url, database_url, keyring(old)) as stack:
        request = t.SecretsRequest(
            job_id="j1", company="acme", template_id=template_id, names=["API_PASSWORD"]
        )
        with pytest.raises(ApiFailure, match="not configured"):
            await stack.client.call("secrets.fetch", request, t.SecretsReply)


async def test_cross_tenant_api_access_is_refused(nats_url: str, database_url: str) -> None:
    runner = await bootstrap_token(database_url, t.TokenCreate(actor="exec-acme"))  # acme gets closed
    ring = keyring(new_key())
    async with tenant_stack(
        nats_url, database_url, ring, executor_actor="exec-acme", api_token=runner.token
    ) as stack:
        template_id = await _setup(stack)
        await stack.company("globex")
        await _grant(stack.client, "acme", ("admin", "admin"), ("exec-acme", "executor"))
        bob = type(stack.client)(stack.bus.nc, actor="bob")
        await _grant(bob, "globex", ("bob", "admin"), ("exec-globex", "executor"))
        spy = type(stack.client)(stack.bus.nc, actor="exec-globex")
        with pytest.raises(ApiFailure, match="may not read in company 'acme'"):
            await bob.call("credential.list", t.CredentialFilter(company="acme"), t.CredentialList)
        with pytest.raises(ApiFailure, match="may not read"):
            await bob.call("template.get", api.TemplateRef(id=template_id), api.RunTemplate)
        with pytest.raises(ApiFailure, match="may not change"):
            await bob.call("template.run", api.RunNow(id=template_id), api.JobQueued)
        request = t.SecretsRequest(
            job_id="j1", company="acme", template_id=template_id, names=["API_PASSWORD"]
        )
        with pytest.raises(ApiFailure, match="may not execute") as refused:
            await spy.call("secrets.fetch", request, t.SecretsReply)
        assert refused.value.message.endswith(
            "(an admin grants it with `jetjobs actor grant acme exec-globex executor`)"
        )
        job = await stack.final_job((await stack.run(template_id, MODE="m")).job_id)
        assert job.status is Status.PROCESSED, job.reason
        audit = await stack.client.call("audit.list", t.AuditQuery(company="acme"), t.AuditList)
        actions = {(e.actor, e.action) for e in audit.entries}
        assert {
            ("admin", "credential.set"),
            ("admin", "template.run"),
            ("exec-acme", "secrets.fetch"),
        } <= actions
        assert all(SECRET not in str(e.detail) for e in audit.entries)


async def _grant(client: ApiClient, company: str, *grants: tuple[str, str]) -> None:
    for actor, role in grants:
        await client.call("actor.grant", t.ActorGrant(company=company, actor=actor, role=role), t.ActorList)
