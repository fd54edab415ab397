"""`jetjobs credentials unassign` and `credentials delete` against real servers."""

from __future__ import annotations

import pytest

from store.credentials import new_key
from tests.acceptance.cli import clean_env, jetjobs
from tests.acceptance.test_tenants_cli import ok, one_line_error
from tests.integration.tenants_stack import keyring, tenant_stack

pytestmark = pytest.mark.timeout(120)


async def test_unassign_and_delete_a_credential_set(nats_url: str, database_url: str) -> None:
    env = clean_env(JETJOBS_NATS_URL=nats_url, JETJOBS_ACTOR="admin")
    async with tenant_stack(nats_url, database_url, keyring(new_key())) as stack:
        await stack.company("acme")
        app = await stack.app("-c 'echo \"$TOKEN\"'")
        template = str((await stack.template(name="nightly", app=str(app.app.id), company="acme")).id)
        await ok("credentials", "set", "acme", "abra", "TOKEN=t-3391", env=env)
        await ok("credentials", "assign", template, "abra", env=env)

        one_line_error(
            await jetjobs("credentials", "delete", "acme", "abra", env=env),
            f"credential set acme/abra is used by template {template} (nightly): unassign it from each "
            "first (`jetjobs credentials unassign TEMPLATE abra`)",
        )
        unassigned = await ok("credentials", "unassign", template, "abra", env=env)
        assert unassigned.out == f"template {template} uses no credentials\n"
        one_line_error(
            await jetjobs("credentials", "unassign", template, "abra", env=env),
            f"template {template} does not use credential set 'abra' (it uses none)",
        )
        deleted = await ok("credentials", "delete", "acme", "abra", env=env)
        assert deleted.out == "deleted credential set acme/abra (TOKEN)\n"
        assert "abra" not in (await ok("credentials", "list", "acme", env=env)).out
        one_line_error(
            await jetjobs("credentials", "delete", "acme", "abra", env=env),
            "company 'acme' has no credential set 'abra'",
        )
