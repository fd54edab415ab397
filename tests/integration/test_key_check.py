"""A store says at start which keys its sealed values need and it lacks: dropping a key
that still encrypts something (after an older CLI's `rotate-key` left template secrets
under it, say) fails each job that needs them, and the operator hears of it first."""

from __future__ import annotations

from structlog.testing import capture_logs

from contracts import tenants as t
from store.credentials import key_id, new_key, parse_key

from .tenants_stack import keyring, tenant_stack
from .test_template_secrets import _template


async def test_a_store_names_the_keys_its_sealed_values_need_and_it_lacks(
    nats_url: str, database_url: str
) -> None:
    old, new = new_key(), new_key()
    async with tenant_stack(nats_url, database_url, keyring(old)) as stack:
        await _template(stack, {"PASSWORD": "tmpl-Pw-4711"})
        values = {"PASSWORD": "cred-Pw-0815"}
        await stack.client.call(
            "credential.set", t.CredentialSet(company="acme", name="abra", values=values), t.CredentialInfo
        )
    with capture_logs() as logs:
        async with tenant_stack(nats_url, database_url, keyring(new)):
            pass
    [warned] = [e for e in logs if e["event"] == "store.key_missing"]
    assert warned["key"] == key_id(parse_key(old, "old"))
    assert warned["sealed"] == {"credential sets": 1, "template secrets": 1}
    assert "add that key to JETJOBS_SECRET_KEY_FILE" in warned["fix"]

    with capture_logs() as logs:
        async with tenant_stack(nats_url, database_url, keyring(new, old)):
            pass
    assert not [e for e in logs if e["event"] == "store.key_missing"], "every key is there"
