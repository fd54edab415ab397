"""`jetjobs actor grant` closing a company, and `jetjobs actor revoke`, against real servers."""

from __future__ import annotations

import pytest

from tests.acceptance.cli import clean_env, jetjobs
from tests.acceptance.test_tenants_cli import ok, one_line_error
from tests.integration.tenants_stack import tenant_stack

pytestmark = pytest.mark.timeout(120)


async def test_closing_a_company_warns_and_a_revoke_keeps_an_admin(nats_url: str, database_url: str) -> None:
    env = clean_env(JETJOBS_NATS_URL=nats_url, JETJOBS_ACTOR="user:root")
    async with tenant_stack(nats_url, database_url, None):
        for code in ("acme", "beta"):
            await ok("company", "create", code, env=env)
        one_line_error(
            await jetjobs("actor", "grant", "acme", "alice", "admin", env=env),
            "you ('user:root') would be locked out. Grant yourself admin first "
            "(`jetjobs actor grant acme user:root admin`), or pass --close",
        )
        closed = await ok("actor", "grant", "acme", "user:root", "admin", env=env)
        assert "user:root" in closed.out and "warning" not in closed.out
        warnings = closed.err.strip().splitlines()
        assert warnings[0].startswith("warning: company 'acme' was open to every actor and is now closed")
        assert "`jetjobs actor grant acme executor executor`" in warnings[-1]
        for actor, role in [("alice", "admin"), ("rita", "reader")]:
            granted = await ok("actor", "grant", "acme", actor, role, env=env)
            assert granted.err == "", "only the closing grant warns"

        revoked = await ok("actor", "revoke", "acme", "alice", "admin", env=env)
        assert "alice" not in revoked.out and "rita" in revoked.out and revoked.err == ""
        one_line_error(
            await jetjobs("actor", "revoke", "acme", "alice", "admin", env=env),
            "actor 'alice' does not hold the role admin in company 'acme' (it holds no role there)",
        )
        one_line_error(
            await jetjobs("actor", "revoke", "acme", "user:root", "admin", env=env),
            "would leave company 'acme' without an admin while it lists 'rita', so nobody could manage it",
        )

        forced = await ok("actor", "grant", "beta", "alice", "admin", "--close", env=env)
        assert (
            "warning: now locked out of 'beta' (they acted in it in the last 30 days): 'user:root'"
            in forced.err
        )
        one_line_error(
            await jetjobs("actor", "list", "beta", env=env),
            "actor 'user:root' may not read in company 'beta'",
        )
