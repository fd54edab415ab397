"""A running store follows its key file: a key rotated in as the README says
(new key first, `jetjobs credentials rotate-key`) works without a restart, a
file made unusable keeps the keys it had, and a key really missing is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts import tenants as t
from contracts.api import ApiFailure
from contracts.enums import Status
from store import credentials
from store.credentials import Keyring, UndecryptableError, new_key
from store.rotation import Rotated, rotate_key
from tests.stack import Stack

from .tenants_stack import tenant_stack

SECRET = "rotated-pw-4242"


def _write(path: Path, *keys: str) -> None:
    path.write_text("".join(f"{key}\n" for key in keys), encoding="utf-8")


def _ring(path: Path) -> Keyring:
    ring = Keyring.load(None, str(path))
    assert ring is not None
    return ring


async def _setup(stack: Stack) -> int:
    await stack.company("acme")
    env = {"PASSWORD": {"type": "password", "required": True}}
    app = await stack.app('-c \'printf "pw=%s" "$PASSWORD"\'', env=env)
    await _set(stack, "sec")
    template = await stack.template(name="t", app=str(app.app.id), company="acme")
    await stack.client.call(
        "credential.assign", t.CredentialAssign(template_id=template.id, name="sec"), t.Assigned
    )
    return template.id


async def _set(stack: Stack, name: str) -> None:
    request = t.CredentialSet(company="acme", name=name, values={"PASSWORD": SECRET})
    await stack.client.call("credential.set", request, t.CredentialInfo)


async def _fetch(stack: Stack, template_id: int) -> dict[str, str]:
    request = t.SecretsRequest(job_id="j1", company="acme", template_id=template_id, names=["PASSWORD"])
    return (await stack.client.call("secrets.fetch", request, t.SecretsReply)).values


async def test_a_rotated_key_works_without_restarting_the_store(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    old, new, path = new_key(), new_key(), tmp_path / "store.keys"
    _write(path, old)
    async with tenant_stack(nats_url, database_url, _ring(path)) as stack:
        template_id = await _setup(stack)
        _write(path, new, old)  # as the README says: the new key first, the old after it
        assert await rotate_key(database_url, _ring(path)) == Rotated(1, 0)
        job = await stack.final_job((await stack.run(template_id)).job_id)
        assert job.status is Status.PROCESSED, job.reason
        assert job.stdout == "pw=********"
        _write(path, new)  # the old key dropped: what the store seals now opens with the new key
        await _set(stack, "later")
        assert await rotate_key(database_url, Keyring([credentials.parse_key(new, "new")])) == Rotated(0, 0)


async def test_an_unusable_key_file_keeps_the_keys_and_a_missing_key_is_named(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    first, other, path = new_key(), new_key(), tmp_path / "store.keys"
    _write(path, first)
    async with tenant_stack(nats_url, database_url, _ring(path)) as stack:
        template_id = await _setup(stack)
        path.write_text("not a key\n", encoding="utf-8")
        await _set(stack, "sec")  # sealed with the key held, not refused
        assert await _fetch(stack, template_id) == {"PASSWORD": SECRET}
        _write(path, first)
        cli_side = tmp_path / "elsewhere.keys"
        _write(cli_side, other, first)  # rotated with a file the store does not read
        assert await rotate_key(database_url, _ring(cli_side)) == Rotated(1, 0)
        with pytest.raises(ApiFailure) as missing:
            await _fetch(stack, template_id)
        assert missing.value.message.endswith(
            "which is not configured: add that key to JETJOBS_SECRET_KEY_FILE"
        )
        path.unlink()
        with pytest.raises(ApiFailure, match="the store cannot read that file now"):
            await _fetch(stack, template_id)
        _write(path, other, first)
        assert await _fetch(stack, template_id) == {"PASSWORD": SECRET}


def test_a_key_file_unchanged_is_never_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "store.keys"
    _write(path, new_key())
    ring, reads = _ring(path), list[Path]()
    reading = credentials.read_key_file

    def counted(read: Path) -> list[bytes]:
        reads.append(read)
        return reading(read)

    monkeypatch.setattr(credentials, "read_key_file", counted)
    sealed = [ring.seal("acme", "sec", {"A": "1"}) for _ in range(20)]
    assert all(ring.open("acme", "sec", s) == {"A": "1"} for s in sealed)
    stranger = credentials.Sealed("0" * 16, sealed[0].nonce, sealed[0].ciphertext)
    for _ in range(3):
        with pytest.raises(UndecryptableError, match="not configured"):
            ring.open("acme", "sec", stranger)
    assert reads == []
    _write(path, new_key(), new_key())
    ring.seal("acme", "sec", {"A": "1"})
    assert reads == [path]
