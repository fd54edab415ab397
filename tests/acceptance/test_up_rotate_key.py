"""The README's key rotation beside a running `jetjobs up`, line by line as written:
`rotate-key` finds the key file `up` made in its home, as it finds its database."""

from __future__ import annotations

import asyncio
import re
import shlex
import sys
from pathlib import Path

import pytest

from store.credentials import key_id, parse_key
from tests.acceptance.cli import clean_env, jetjobs
from tests.acceptance.test_up import gone, interrupt, read_until, start_up

pytestmark = pytest.mark.timeout(180)

README = Path(__file__).resolve().parents[2] / "README.md"


def rotation_lines() -> list[str]:
    """The shell lines of the README's rotation beside `jetjobs up`, comments dropped."""
    text = README.read_text()
    block = text.split("Beside a running `jetjobs up`, `rotate-key`", 1)[1].split("```sh\n", 1)[1]
    lines = block.split("```", 1)[0].splitlines()
    return [re.sub(r"\s+#.*$", "", line) for line in lines if line.strip()]


async def sh(line: str, cwd: Path) -> str:
    """One README line in `cwd`, with this checkout's jetjobs; what it printed."""
    command = line.replace(".venv/bin/jetjobs", f"{shlex.quote(sys.executable)} -m jetjobs")
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        command,
        cwd=cwd,
        env=clean_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, f"{line}\n{out.decode()}{err.decode()}"
    return out.decode()


def primary(key_file: Path) -> str:
    return key_id(parse_key(key_file.read_text().splitlines()[0], str(key_file)))


async def test_rotate_key_beside_up_as_the_readme_says(tmp_path: Path) -> None:
    lines = rotation_lines()
    assert [line.split()[0] for line in lines] == ["key=$(.venv/bin/jetjobs", ".venv/bin/jetjobs", "sed"]
    assert lines[1] == ".venv/bin/jetjobs credentials rotate-key"
    home = tmp_path / ".jetjobs"  # the README's default home, from the folder the lines run in
    process = await start_up(home)
    try:
        assert process.stdout is not None
        await read_until(process.stdout, "jetjobs is up", timeout=60)
        env = clean_env(JETJOBS_HOME=str(home))
        assert (await jetjobs("company", "create", "acme", env=env)).code == 0
        stored = await jetjobs("credentials", "set", "acme", "abra", "PASSWORD=s3cret", env=env)
        assert stored.code == 0, stored
        key_file = home / "secret.key"
        old = primary(key_file)

        await sh(lines[0], tmp_path)
        new = primary(key_file)
        assert new != old and len(key_file.read_text().splitlines()) == 2
        rotated = f"re-encrypted 1 credential set(s), 0 template secret value(s) and 0 job secret value(s) under key {new}\n"
        assert await sh(lines[1], tmp_path) == rotated
        await sh(lines[2], tmp_path)
        assert len(key_file.read_text().splitlines()) == 1 and primary(key_file) == new
        assert key_file.stat().st_mode & 0o777 == 0o600
        # with the old key gone, every set is already under the new one
        rotated = f"re-encrypted 0 credential set(s), 0 template secret value(s) and 0 job secret value(s) under key {new}\n"
        assert await sh(lines[1], tmp_path) == rotated
    finally:
        assert await interrupt(process) == 0
    await gone(home, timeout=20)
