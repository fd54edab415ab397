"""A template moved to another company leaves its old company's credential sets
behind: the new company's executors never get their values, and the old company
stays free to remove them. The template's own sealed values go with it."""

from __future__ import annotations

import asyncpg
import pytest
from pydantic import BaseModel

from bus import ApiClient
from contracts import api
from contracts import schedule as sc
from contracts import tenants as t
from contracts.api import ApiFailure
from contracts.models import RunTemplate, TemplateSpec
from store.credentials import new_key
from store.tokens import bootstrap_token
from tests.integration import old_rows
from tests.stack import Stack

from .tenants_stack import keyring, tenant_stack

pytestmark = pytest.mark.timeout(120)

ACME_VALUE = "acme-only-pw-5521"
OWN_VALUE = "own-sealed-pw-8834"
ENV = {"PW": {"type": "password"}, "OWN": {"type": "password"}}


async def _grant(client: ApiClient, company: str, *grants: tuple[str, t.Role]) -> None:
    for actor, role in grants:
        await client.call("actor.grant", t.ActorGrant(company=company, actor=actor, role=role), t.ActorList)


async def _acme_template(stack: Stack, mover: ApiClient) -> int:
    """A template of acme that uses acme's set `acred` and keeps a sealed value of its own."""
    for code in ("acme", "beta"):
        await stack.company(code)
    await _grant(mover, "acme", ("acme-admin", "admin"))
    await _grant(mover, "beta", ("acme-admin", "admin"), ("exec-beta", "executor"))
    app = await mover.call(
        "app.import",
        api.AppImport(document={"name": "mover", "executable": "true", "environment": ENV}),
        api.AppImported,
    )
    acred = t.CredentialSet(company="acme", name="acred", values={"PW": ACME_VALUE})
    await mover.call("credential.set", acred, t.CredentialInfo)
    spec = TemplateSpec(name="moved", app=str(app.app.id), company="acme", env={"OWN": OWN_VALUE})
    template = await mover.call("template.create", spec, RunTemplate)
    await mover.call(
        "credential.assign", t.CredentialAssign(template_id=template.id, name="acred"), t.Assigned
    )
    return template.id


async def _call(client: ApiClient, op: str, request: BaseModel) -> BaseModel:
    return await client.call(op, request, api.OPERATIONS[op].reply)


async def test_a_moved_template_leaves_its_old_companys_credentials(nats_url: str, database_url: str) -> None:
    runner = await bootstrap_token(database_url, t.TokenCreate(actor="exec-beta"))
    async with tenant_stack(nats_url, database_url, keyring(new_key())) as stack:
        mover = ApiClient(stack.bus.nc, actor="acme-admin")
        template_id = await _acme_template(stack, mover)

        moved = await _call(
            mover, "template.update", api.TemplateUpdate(id=template_id, changes={"company": "beta"})
        )
        assert isinstance(moved, RunTemplate) and moved.company == "beta"

        executor = ApiClient(stack.bus.nc, actor="exec-beta", token=runner.token)
        fetch = t.SecretsRequest(
            job_id="move-j1", company="beta", template_id=template_id, names=["PW", "OWN"]
        )
        served = await executor.call("secrets.fetch", fetch, t.SecretsReply)
        assert served.values == {"OWN": OWN_VALUE}, "acme's value is not served to beta; its own one is"

        env = await mover.call("template.env", api.TemplateRef(id=template_id), t.TemplateEnv)
        assert {e.name: e.source for e in env.entries} == {"PW": "unset", "OWN": "template"}

        with pytest.raises(ApiFailure) as gone:
            await _call(
                mover, "credential.unassign", t.CredentialAssign(template_id=template_id, name="acred")
            )
        assert gone.value.code == 404 and "(it uses none)" in gone.value.message
        deleted = await mover.call(
            "credential.delete", t.CredentialRef(company="acme", name="acred"), t.CredentialInfo
        )
        assert (deleted.company, deleted.name) == ("acme", "acred")

        audit = await mover.call("audit.list", t.AuditQuery(company="acme"), t.AuditList)
        left = [e.detail for e in audit.entries if e.action == "credential.unassign"]
        assert left == [{"template_id": template_id, "name": "acred", "moved_to": "beta"}]


async def test_an_assignment_left_from_before_is_not_served(nats_url: str, database_url: str) -> None:
    runner = await bootstrap_token(database_url, t.TokenCreate(actor="exec-beta"))
    async with tenant_stack(nats_url, database_url, keyring(new_key())) as stack:
        mover = ApiClient(stack.bus.nc, actor="acme-admin")
        template_id = await _acme_template(stack, mover)
        await _call(mover, "template.update", api.TemplateUpdate(id=template_id, changes={"company": "beta"}))
        conn = await asyncpg.connect(database_url)
        try:  # as a move made before moves unassigned the old company's sets left it
            await conn.execute(
                "INSERT INTO template_credential (template_id, credential_id) "
                "SELECT $1, id FROM credential WHERE name = 'acred'",
                template_id,
            )
        finally:
            await conn.close()

        executor = ApiClient(stack.bus.nc, actor="exec-beta", token=runner.token)
        fetch = t.SecretsRequest(job_id="move-j2", company="beta", template_id=template_id, names=["PW"])
        assert (await executor.call("secrets.fetch", fetch, t.SecretsReply)).values == {}

    conn = await asyncpg.connect(database_url)
    try:  # a store of this version applies migration 29 to a database that held such a row
        await conn.execute("DELETE FROM jetjobs_migrations WHERE version = 29")
        async with tenant_stack(nats_url, database_url, keyring(new_key())):
            left = await conn.fetchval(
                "SELECT count(*) FROM template_credential WHERE template_id = $1", template_id
            )
    finally:
        await conn.close()
    assert left == 0, "the old company's assignment is gone, so it can unassign or delete its set"


async def test_a_moved_templates_explain_leaves_out_its_old_companys_slots(
    nats_url: str, database_url: str
) -> None:
    """The slots a template fired in its old company are that company's history: its
    new company's readers must not learn their job ids and outcomes from `explain`."""
    async with tenant_stack(nats_url, database_url, keyring(new_key())) as stack:
        mover = ApiClient(stack.bus.nc, actor="acme-admin")
        template_id = await _acme_template(stack, mover)
        conn = await asyncpg.connect(database_url)
        try:
            await old_rows.slot(conn, template_id, 0.01, job_id="acme-slot-job")
        finally:
            await conn.close()
        explain = sc.ExplainRequest(id=template_id)
        before = await mover.call("template.explain", explain, sc.Explanation)
        assert [slot.record.job_id for slot in before.slots] == ["acme-slot-job"]
        await _call(mover, "template.update", api.TemplateUpdate(id=template_id, changes={"company": "beta"}))
        after = await mover.call("template.explain", explain, sc.Explanation)
        assert (after.company, after.slots) == ("beta", [])
