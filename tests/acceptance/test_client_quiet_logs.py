"""Commands that run store code in-process (`actor token create --bootstrap`,
`credentials rotate-key`) print their answer, not the store's log lines, unless
`--log-level` asks for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from store.credentials import new_key
from tests.acceptance.cli import clean_env, jetjobs

pytestmark = pytest.mark.timeout(120)


async def test_in_process_store_commands_print_no_service_log(database_url: str, tmp_path: Path) -> None:
    key_file = tmp_path / "secret.key"
    key_file.write_text(new_key() + "\n")
    env = clean_env(JETJOBS_DATABASE_URL=database_url, JETJOBS_SECRET_KEY_FILE=str(key_file))

    boot = await jetjobs("actor", "token", "create", "root", "--admin", "--bootstrap", env=env)
    assert boot.code == 0 and boot.out.startswith("jjt_"), boot
    assert boot.err == "", boot.err
    rotated = await jetjobs("credentials", "rotate-key", env=env)
    assert rotated.code == 0 and rotated.out.startswith("re-encrypted 0 credential set(s)"), rotated
    assert rotated.err == "", rotated.err

    asked = await jetjobs("--log-level", "info", "credentials", "rotate-key", env=env)
    assert asked.code == 0 and '"event": "credentials.rotated"' in asked.err, asked
