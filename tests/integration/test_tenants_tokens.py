"""Actor authentication: tokens issued by an admin, stored hashed, verified by
the store on every call; unknown and revoked tokens refused; a store that
requires tokens refuses calls without one, executors included."""

from __future__ import annotations

import asyncpg
import pytest

from bus import ApiClient
from contracts import api
from contracts import tenants as t
from contracts.api import ApiFailure
from contracts.enums import Status
from contracts.models import Company
from store.credentials import new_key
from store.tokens import bootstrap_token

from .tenants_stack import keyring, tenant_stack


async def _stored_text(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT t::text AS r FROM actor_token t")
        return "\n".join(r["r"] for r in rows)
    finally:
        await conn.close()


async def test_a_store_requiring_tokens_knows_who_calls(nats_url: str, database_url: str) -> None:
    root = await bootstrap_token(database_url, t.TokenCreate(actor="root", admin=True, note="first admin"))
    runner = await bootstrap_token(database_url, t.TokenCreate(actor="exec-acme"))
    assert root.token.startswith("jjt_") and root.token not in await _stored_text(database_url)
    async with tenant_stack(
        nats_url,
        database_url,
        keyring(new_key()),
        executor_actor="exec-acme",
        require_tokens=True,
        token=root.token,
        api_token=runner.token,
    ) as stack:
        nc = stack.bus.nc
        with pytest.raises(ApiFailure, match="requires an API token") as refused:
            await ApiClient(nc, actor="root").call("company.list", api.CompanyFilter(), api.CompanyList)
        assert refused.value.code == 401
        with pytest.raises(ApiFailure, match="unknown API token"):
            await ApiClient(nc, token="jjt_guessed").call(
                "company.list", api.CompanyFilter(), api.CompanyList
            )

        await stack.company("acme")
        await stack.client.call(
            "actor.grant", t.ActorGrant(company="acme", actor="root", role="admin"), t.ActorList
        )
        grant = t.ActorGrant(company="acme", actor="exec-acme", role="executor")
        await stack.client.call("actor.grant", grant, t.ActorList)
        alice = await stack.client.call("token.create", t.TokenCreate(actor="alice"), t.TokenIssued)
        assert alice.info.created_by == "root" and not alice.info.admin

        # The token decides who calls, whatever actor the header names.
        as_alice = ApiClient(nc, actor="root", token=alice.token)
        with pytest.raises(ApiFailure, match="actor 'alice' may not read in company 'acme'"):
            await as_alice.call("credential.list", t.CredentialFilter(company="acme"), t.CredentialList)
        with pytest.raises(ApiFailure, match="only an actor with an admin token") as forbidden:
            await as_alice.call("token.create", t.TokenCreate(actor="alice", admin=True), t.TokenIssued)
        assert forbidden.value.code == 403
        await as_alice.call("company.create", Company(code="alices", name="Alice's"), Company)

        # An executor proves itself with its own token to fetch a job's secrets.
        app = await stack.app("-c 'echo \"$PW\"'", env={"PW": {"type": "password"}})
        creds = t.CredentialSet(company="acme", name="c", values={"PW": "tok-secret-3381"})
        await stack.client.call("credential.set", creds, t.CredentialInfo)
        template = await stack.template(name="t", app=str(app.app.id), company="acme")
        await stack.client.call(
            "credential.assign", t.CredentialAssign(template_id=template.id, name="c"), t.Assigned
        )
        job = await stack.final_job((await stack.run(template.id)).job_id)
        assert job.status is Status.PROCESSED and job.stdout == "********\n", job.reason

        revoked = await stack.client.call("token.revoke", t.TokenRef(id=alice.info.id), t.TokenInfo)
        assert revoked.revoked_at is not None
        with pytest.raises(ApiFailure, match=f"API token {alice.info.id} of actor 'alice' was revoked"):
            await as_alice.call("company.list", api.CompanyFilter(), api.CompanyList)
        listed = await stack.client.call("token.list", t.TokenFilter(), t.TokenList)
        assert {(i.actor, i.revoked_at is not None) for i in listed.tokens} == {
            ("root", False),
            ("exec-acme", False),
            ("alice", True),
        }
        audit = await stack.client.call("audit.list", t.AuditQuery(limit=100), t.AuditList)
        done = {(e.actor, e.action) for e in audit.entries}
        assert {("bootstrap", "token.create"), ("root", "token.create"), ("root", "token.revoke")} <= done
        assert ("alice", "company.create") in done
        stored = await _stored_text(database_url)
        assert alice.token not in stored and runner.token not in stored


async def test_without_required_tokens_a_presented_token_is_still_checked(
    nats_url: str, database_url: str
) -> None:
    async with tenant_stack(nats_url, database_url, keyring(new_key())) as stack:
        nc = stack.bus.nc
        await ApiClient(nc, actor="someone").call("company.list", api.CompanyFilter(), api.CompanyList)
        with pytest.raises(ApiFailure, match="unknown API token"):
            await ApiClient(nc, token="jjt_nope").call("company.list", api.CompanyFilter(), api.CompanyList)
        with pytest.raises(ApiFailure, match="--bootstrap"):
            await stack.client.call("token.create", t.TokenCreate(actor="me", admin=True), t.TokenIssued)
