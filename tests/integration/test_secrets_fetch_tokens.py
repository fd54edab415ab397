"""Credential values of a company that lists its actors go only to an executor
proven by a token, even from a store that takes other callers at their word."""

from __future__ import annotations

import pytest

from bus import ApiClient
from contracts import tenants as t
from contracts.api import ApiFailure
from contracts.enums import Status
from store.credentials import new_key
from store.tokens import bootstrap_token

from .tenants_stack import keyring, tenant_stack

SECRET = "fetch-secret-8841"


async def test_a_named_executor_without_a_token_gets_no_secrets_of_a_closed_company(
    nats_url: str, database_url: str
) -> None:
    runner = await bootstrap_token(database_url, t.TokenCreate(actor="exec-acme"))
    ring = keyring(new_key())
    async with tenant_stack(
        nats_url, database_url, ring, executor_actor="exec-acme", api_token=runner.token
    ) as stack:
        app = await stack.app("-c 'echo \"$PW\"'", env={"PW": {"type": "password"}})
        templates = {}
        for company in ("acme", "globex"):
            await stack.company(company)
            creds = t.CredentialSet(company=company, name="c", values={"PW": SECRET})
            await stack.client.call("credential.set", creds, t.CredentialInfo)
            template = await stack.template(name="t", app=str(app.app.id), company=company)
            assign = t.CredentialAssign(template_id=template.id, name="c")
            await stack.client.call("credential.assign", assign, t.Assigned)
            templates[company] = template.id
        for actor, role in (("admin", "admin"), ("exec-acme", "executor")):
            grant = t.ActorGrant(company="acme", actor=actor, role=role)
            await stack.client.call("actor.grant", grant, t.ActorList)

        job = await stack.final_job((await stack.run(templates["acme"])).job_id)
        assert job.status is Status.PROCESSED and job.stdout == "********\n", job.reason

        forged = ApiClient(stack.bus.nc, actor="exec-acme")
        request = t.SecretsRequest(job_id="j2", company="acme", template_id=templates["acme"], names=["PW"])
        with pytest.raises(ApiFailure, match="without an API token") as refused:
            await forged.call("secrets.fetch", request, t.SecretsReply)
        assert refused.value.code == 401
        assert "`jetjobs actor token create exec-acme`" in refused.value.message

        open_company = t.SecretsRequest(
            job_id="j1", company="globex", template_id=templates["globex"], names=["PW"]
        )
        served = await ApiClient(stack.bus.nc).call("secrets.fetch", open_company, t.SecretsReply)
        assert served.values == {"PW": SECRET}, "a company open to every actor needs no token"
