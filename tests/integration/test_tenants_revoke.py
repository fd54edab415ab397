"""Taking roles away and closing a company on purpose: a revoke gives the actors
left, is audited, and never leaves a company that lists actors without an admin;
the grant that closes an open company says so, names the recent actors it locks
out, and refuses to lock out its own caller unless asked to close it anyway."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import BaseModel

from bus import ApiClient
from contracts import tenants as t
from contracts.api import ApiFailure
from contracts.enums import ErrorKind, Status
from store.credentials import new_key
from store.tokens import bootstrap_token
from tests.stack import Stack

from .tenants_stack import keyring, tenant_stack

pytestmark = pytest.mark.timeout(120)

SCRIPT = "-c 'echo \"$PW\"'"


async def _refused(client: ApiClient, op: str, request: BaseModel) -> ApiFailure:
    with pytest.raises(ApiFailure) as caught:
        await client.call(op, request, t.ActorList)
    return caught.value


async def _actors(client: ApiClient, company: str) -> set[tuple[str, str]]:
    listed = await client.call("actor.list", t.CredentialFilter(company=company), t.ActorList)
    return {(a.actor, a.role) for a in listed.actors}


async def _template_with_credentials(stack: Stack) -> int:
    """A template of `acme` whose jobs fetch a secret (so executors act in acme)."""
    app = await stack.app(SCRIPT, env={"PW": {"type": "password", "required": True}})
    creds = t.CredentialSet(company="acme", name="c", values={"PW": "revoke-secret-5521"})
    await stack.client.call("credential.set", creds, t.CredentialInfo)
    template = await stack.template(name="t", app=str(app.app.id), company="acme")
    assign = t.CredentialAssign(template_id=template.id, name="c")
    await stack.client.call("credential.assign", assign, t.Assigned)
    return template.id


async def test_the_grant_that_closes_a_company_says_whom_it_locks_out(
    nats_url: str, database_url: str
) -> None:
    runner = await bootstrap_token(database_url, t.TokenCreate(actor="executor"))  # a closed company needs it
    async with tenant_stack(nats_url, database_url, keyring(new_key()), api_token=runner.token) as stack:
        root = replace(stack, client=ApiClient(stack.bus.nc, actor="user:root"))
        await root.company("acme")
        template_id = await _template_with_credentials(root)
        job = await root.final_job((await root.run(template_id)).job_id)
        assert job.status is Status.PROCESSED, job.reason  # the executor fetched secrets in acme

        refused = await _refused(
            root.client, "actor.grant", t.ActorGrant(company="acme", actor="alice", role="admin")
        )
        assert refused.code == 409
        assert refused.message == (
            "granting 'alice' admin closes company 'acme', open to every actor until now: from then on "
            "only the actors it lists may act in it, and you ('user:root') would be locked out. Grant "
            "yourself admin first (`jetjobs actor grant acme user:root admin`), or pass --close "
            '(API: "close": true) to close it anyway'
        )
        assert await _actors(root.client, "acme") == set(), "a refused grant changes nothing"

        closed = await root.client.call(
            "actor.grant", t.ActorGrant(company="acme", actor="user:root", role="admin"), t.ActorList
        )
        assert [(a.actor, a.role) for a in closed.actors] == [("user:root", "admin")]
        assert closed.locked_out == ["executor"]
        opening, locked, executors = closed.warnings
        assert "company 'acme' was open to every actor and is now closed" in opening
        assert "now locked out of 'acme' (they acted in it in the last 30 days): 'executor'" in locked
        assert "`jetjobs actor grant acme executor executor`" in executors

        grant = t.ActorGrant(company="acme", actor="rita", role="reader")
        again = await root.client.call("actor.grant", grant, t.ActorList)
        assert again.warnings == [] and again.locked_out == [], "only the closing grant warns"
        failed = await root.final_job((await root.run(template_id)).job_id)
        assert (failed.status, failed.kind) == (Status.ERROR, ErrorKind.INVALID)
        assert "could not fetch the job's credentials" in (failed.reason or "")
        await root.client.call(
            "actor.grant", t.ActorGrant(company="acme", actor="executor", role="executor"), t.ActorList
        )
        job = await root.final_job((await root.run(template_id)).job_id)
        assert job.status is Status.PROCESSED, job.reason


async def test_closing_a_company_on_another_actors_behalf_takes_close(
    nats_url: str, database_url: str
) -> None:
    async with tenant_stack(nats_url, database_url, None) as stack:
        await stack.company("acme")
        grant = t.ActorGrant(company="acme", actor="alice", role="admin", close=True)
        closed = await stack.client.call("actor.grant", grant, t.ActorList)
        assert closed.locked_out == ["admin"], "the caller, named by its own grant's audit entry"
        assert "'admin'" in closed.warnings[1]
        refused = await _refused(stack.client, "actor.list", t.CredentialFilter(company="acme"))
        assert refused.code == 403 and "actor 'admin' may not read in company 'acme'" in refused.message
        audit = await ApiClient(stack.bus.nc, actor="alice").call(
            "audit.list", t.AuditQuery(company="acme"), t.AuditList
        )
        assert audit.entries[0].action == "actor.grant" and audit.entries[0].detail["close"] is True


async def test_a_revoke_gives_the_actors_left_and_never_the_last_admin(
    nats_url: str, database_url: str
) -> None:
    async with tenant_stack(nats_url, database_url, None) as stack:
        admin = stack.client
        alice, rita = (ApiClient(stack.bus.nc, actor=name) for name in ("alice", "rita"))
        await stack.company("acme")
        for actor, role in [("admin", "admin"), ("alice", "admin"), ("rita", "reader")]:
            await admin.call("actor.grant", t.ActorGrant(company="acme", actor=actor, role=role), t.ActorList)

        for client, who in [(rita, "rita"), (ApiClient(stack.bus.nc, actor="eve"), "eve")]:
            refused = await _refused(
                client, "actor.revoke", t.ActorRevoke(company="acme", actor="alice", role="admin")
            )
            assert (
                refused.code == 403 and f"actor '{who}' may not change in company 'acme'" in refused.message
            )

        missing = await _refused(
            admin, "actor.revoke", t.ActorRevoke(company="acme", actor="rita", role="admin")
        )
        assert missing.code == 404
        assert missing.message == (
            "actor 'rita' does not hold the role admin in company 'acme' (it holds reader): "
            "`jetjobs actor list acme` shows who holds what"
        )
        nobody = await _refused(
            admin, "actor.revoke", t.ActorRevoke(company="acme", actor="bob", role="reader")
        )
        assert nobody.code == 404 and "(it holds no role there)" in nobody.message

        left = await admin.call(
            "actor.revoke", t.ActorRevoke(company="acme", actor="alice", role="admin"), t.ActorList
        )
        assert [(a.actor, a.role) for a in left.actors] == [("admin", "admin"), ("rita", "reader")]
        assert left.warnings == []
        refused = await _refused(
            alice, "actor.revoke", t.ActorRevoke(company="acme", actor="rita", role="reader")
        )
        assert refused.code == 403, "the revoke took effect"

        last = await _refused(
            admin, "actor.revoke", t.ActorRevoke(company="acme", actor="admin", role="admin")
        )
        assert last.code == 409
        assert last.message == (
            "revoking the role admin of 'admin' would leave company 'acme' without an admin while it lists "
            "'rita', so nobody could manage it any more: grant another actor admin first (`jetjobs actor "
            "grant acme ACTOR admin`); to open the company to every actor instead, revoke the other roles first"
        )
        assert await _actors(admin, "acme") == {("admin", "admin"), ("rita", "reader")}

        await admin.call(
            "actor.revoke", t.ActorRevoke(company="acme", actor="rita", role="reader"), t.ActorList
        )
        opened = await admin.call(
            "actor.revoke", t.ActorRevoke(company="acme", actor="admin", role="admin"), t.ActorList
        )
        assert opened.actors == []
        assert opened.warnings == [
            "company 'acme' lists no actors any more: it is open to every actor again "
            "(granting an admin closes it: `jetjobs actor grant acme ACTOR admin`)"
        ]
        await ApiClient(stack.bus.nc, actor="eve").call(
            "actor.list", t.CredentialFilter(company="acme"), t.ActorList
        )

        audit = await admin.call("audit.list", t.AuditQuery(company="acme"), t.AuditList)
        revokes = [(e.actor, e.detail) for e in audit.entries if e.action == "actor.revoke"]
        assert revokes == [
            ("admin", {"company": "acme", "actor": "admin", "role": "admin"}),
            ("admin", {"company": "acme", "actor": "rita", "role": "reader"}),
            ("admin", {"company": "acme", "actor": "alice", "role": "admin"}),
        ], "refused revokes leave no entry"
