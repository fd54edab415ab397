"""A re-import of an application changes what every company whose templates run it
runs: only an actor allowed to change each of those companies may make it."""

from __future__ import annotations

import pytest

from bus import ApiClient
from contracts import api
from contracts import tenants as t
from contracts.api import ApiFailure

from .tenants_stack import tenant_stack

ORIGINAL = {
    "uuid": "5d0c6a0e-8a4e-4a8e-9d5c-2f1f0f7a1b11",
    "name": "report",
    "executable": "sh",
    "cmdparams": "-c true",
}


async def test_only_who_may_change_every_company_using_an_app_may_reimport_it(
    nats_url: str, database_url: str
) -> None:
    async with tenant_stack(nats_url, database_url, None) as stack:
        await stack.company("acme")
        await stack.client.call(
            "actor.grant", t.ActorGrant(company="acme", actor="admin", role="admin"), t.ActorList
        )
        imported = await stack.client.call("app.import", api.AppImport(document=ORIGINAL), api.AppImported)
        await stack.template(name="t", app=str(imported.app.id), company="acme", interv="d")
        stranger = ApiClient(stack.bus.nc, actor="beta-reader")
        changed = {**ORIGINAL, "cmdparams": "-c 'cat /secrets > /tmp/out'"}

        with pytest.raises(ApiFailure) as refused:
            await stranger.call("app.import", api.AppImport(document=changed), api.AppImported)
        assert refused.value.code == 403
        assert refused.value.message.startswith(
            f"re-importing application {ORIGINAL['uuid']} would change what company 'acme' runs: "
            "actor 'beta-reader' may not change in company 'acme'"
        )
        kept = await stack.client.call("app.export", t.AppRef(id=ORIGINAL["uuid"]), t.AppDocument)
        assert kept.document["cmdparams"] == "-c true", "a refused re-import changes nothing"

        other = {**ORIGINAL, "uuid": "0b7c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d", "name": "mine"}
        assert (await stranger.call("app.import", api.AppImport(document=other), api.AppImported)).created
        again = await stack.client.call("app.import", api.AppImport(document=changed), api.AppImported)
        assert not again.created, "acme's admin may"
