"""`--json` of the commands against real servers: always one JSON document on
stdout, whatever the number of things a command did."""

from __future__ import annotations

import json
from pathlib import Path

from store.credentials import new_key
from tests.acceptance.cli import clean_env, jetjobs
from tests.integration.tenants_stack import keyring, tenant_stack
from tests.stack import running_stack


def _app_file(folder: Path, name: str) -> Path:
    path = folder / f"{name}.multiflexi.app.json"
    path.write_text(json.dumps({"name": name, "executable": "true"}))
    return path


async def test_app_import_prints_one_object_or_one_array(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    env = clean_env(JETJOBS_NATS_URL=nats_url)
    one, two = _app_file(tmp_path, "one"), _app_file(tmp_path, "two")
    async with running_stack(nats_url, database_url, scheduler=False):
        several = await jetjobs("--json", "app", "import", str(one), str(two), env=env)
        assert several.code == 0, several
        replies = json.loads(several.out)
        assert [(r["app"]["name"], r["created"]) for r in replies] == [("one", True), ("two", True)]

        single = await jetjobs("app", "import", str(one), "--json", env=env)
        assert single.code == 0, single
        reply = json.loads(single.out)
        assert (reply["app"]["name"], reply["created"]) == ("one", False)


async def test_rotate_key_as_json(nats_url: str, database_url: str, tmp_path: Path) -> None:
    old, fresh = new_key(), new_key()
    async with tenant_stack(nats_url, database_url, keyring(old)) as stack:
        await stack.company("acme")
        env = clean_env(JETJOBS_NATS_URL=nats_url)
        assert (await jetjobs("credentials", "set", "acme", "abra", "K=v", env=env)).code == 0
    keys = tmp_path / "store.keys"
    keys.write_text(f"{fresh}\n{old}\n")
    env = clean_env(JETJOBS_DATABASE_URL=database_url, JETJOBS_SECRET_KEY_FILE=str(keys))
    rotated = await jetjobs("--json", "credentials", "rotate-key", env=env)
    assert rotated.code == 0, rotated
    reply = json.loads(rotated.out)
    assert reply["reencrypted"] == 1 and isinstance(reply["key"], str) and reply["key"]
