"""Removing credentials: a template stops using a set (its next job runs without
the set's values), a set no live template uses is deleted, one in use is refused
naming its templates; admins only, and every removal is audited."""

from __future__ import annotations

import asyncpg
import pytest
from pydantic import BaseModel

from bus import ApiClient
from contracts import api
from contracts import tenants as t
from contracts.api import ApiFailure
from contracts.enums import Status
from store.credentials import new_key

from .tenants_stack import keyring, tenant_stack

pytestmark = pytest.mark.timeout(120)

SCRIPT = "-c 'echo \"pw=$PW\"'"


async def _refused(client: ApiClient, op: str, request: BaseModel) -> ApiFailure:
    with pytest.raises(ApiFailure) as caught:
        await client.call(op, request, api.OPERATIONS[op].reply)
    return caught.value


async def test_unassign_then_delete_and_a_set_in_use_is_kept(nats_url: str, database_url: str) -> None:
    async with tenant_stack(nats_url, database_url, keyring(new_key())) as stack:
        admin = stack.client
        await stack.company("acme")
        app = await stack.app(SCRIPT, env={"PW": {"type": "password"}})
        for name in ("abra", "spare"):
            values = {"PW": f"{name}-remove-7719"} if name == "abra" else {"OTHER": "x"}
            await admin.call(
                "credential.set", t.CredentialSet(company="acme", name=name, values=values), t.CredentialInfo
            )
        first = await stack.template(name="first", app=str(app.app.id), company="acme")
        second = await stack.template(name="second", app=str(app.app.id), company="acme")
        for template in (first, second):
            for name in ("abra", "spare"):
                await admin.call(
                    "credential.assign", t.CredentialAssign(template_id=template.id, name=name), t.Assigned
                )

        in_use = await _refused(admin, "credential.delete", t.CredentialRef(company="acme", name="abra"))
        assert in_use.code == 409
        assert in_use.message == (
            f"credential set acme/abra is used by templates {first.id} (first), {second.id} (second): "
            "unassign it from each first (`jetjobs credentials unassign TEMPLATE abra`)"
        )

        left = await admin.call(
            "credential.unassign", t.CredentialAssign(template_id=first.id, name="abra"), t.Assigned
        )
        assert left == t.Assigned(template_id=first.id, credentials=["spare"])
        job = await stack.final_job((await stack.run(first.id)).job_id)
        assert job.status is Status.PROCESSED and job.stdout == "pw=\n", "the job runs without the set"
        not_used = await _refused(
            admin, "credential.unassign", t.CredentialAssign(template_id=first.id, name="abra")
        )
        assert not_used.code == 404
        assert not_used.message == (
            f"template {first.id} does not use credential set 'abra' (it uses spare): "
            f"`jetjobs template env {first.id}` shows where each variable comes from"
        )

        still = await _refused(admin, "credential.delete", t.CredentialRef(company="acme", name="abra"))
        assert still.code == 409 and f"used by template {second.id} (second):" in still.message
        await admin.call("template.delete", api.TemplateRef(id=second.id), api.RunTemplate)
        deleted = await admin.call(
            "credential.delete", t.CredentialRef(company="acme", name="abra"), t.CredentialInfo
        )
        assert (deleted.company, deleted.name, deleted.fields) == ("acme", "abra", ["PW"])
        listed = await admin.call("credential.list", t.CredentialFilter(company="acme"), t.CredentialList)
        assert [c.name for c in listed.credentials] == ["spare"]

        gone = await _refused(admin, "credential.delete", t.CredentialRef(company="acme", name="abra"))
        assert gone.code == 404
        assert gone.message == (
            "company 'acme' has no credential set 'abra': `jetjobs credentials list acme` lists its sets"
        )
        reassign = await _refused(
            admin, "credential.assign", t.CredentialAssign(template_id=first.id, name="abra")
        )
        assert reassign.code == 404

        conn = await asyncpg.connect(database_url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM credential WHERE name = 'abra'") == 0
        finally:
            await conn.close()
        audit = await admin.call("audit.list", t.AuditQuery(company="acme"), t.AuditList)
        removals = [
            (e.action, e.detail)
            for e in audit.entries
            if e.action in ("credential.unassign", "credential.delete")
        ]
        assert removals == [
            ("credential.delete", {"name": "abra", "fields": ["PW"]}),
            ("credential.unassign", {"template_id": first.id, "name": "abra"}),
        ], "refused removals leave no entry"


async def test_only_an_admin_removes_credentials(nats_url: str, database_url: str) -> None:
    async with tenant_stack(nats_url, database_url, keyring(new_key())) as stack:
        admin = stack.client
        await stack.company("acme")
        app = await stack.app(SCRIPT)
        await admin.call(
            "credential.set", t.CredentialSet(company="acme", name="c", values={"PW": "p"}), t.CredentialInfo
        )
        template = await stack.template(name="t", app=str(app.app.id), company="acme")
        await admin.call(
            "credential.assign", t.CredentialAssign(template_id=template.id, name="c"), t.Assigned
        )
        for actor, role in [("admin", "admin"), ("rita", "reader")]:
            await admin.call("actor.grant", t.ActorGrant(company="acme", actor=actor, role=role), t.ActorList)
        for who in ("rita", "eve"):
            client = ApiClient(stack.bus.nc, actor=who)
            for op, request in [
                ("credential.unassign", t.CredentialAssign(template_id=template.id, name="c")),
                ("credential.delete", t.CredentialRef(company="acme", name="c")),
            ]:
                refused = await _refused(client, op, request)
                assert refused.code == 403 and f"actor '{who}' may not change" in refused.message, op
        env = await admin.call("template.env", api.TemplateRef(id=template.id), t.TemplateEnv)
        assert {e.source for e in env.entries if e.name == "PW"} == {"credential c"}
