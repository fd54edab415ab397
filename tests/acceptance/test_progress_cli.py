"""Long commands show progress on a terminal and stay quiet when piped."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.acceptance.cli import clean_env, jetjobs
from tests.stack import Stack, running_stack

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "disk-report.multiflexi.app.json"


@pytest.fixture
async def stack(nats_url: str, database_url: str):  # type: ignore[no-untyped-def]
    async with running_stack(nats_url, database_url, scheduler=False) as running:
        yield running


async def on_terminal(*args: str, env: dict[str, str], timeout: float = 60.0) -> tuple[int, str, str]:
    """Run `jetjobs ARGS` with stderr on a pseudo-terminal: (exit code, stdout, terminal text)."""
    leader, follower = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jetjobs", *args,
        env=env | {"COLUMNS": "100", "TERM": "xterm"},
        stdout=asyncio.subprocess.PIPE, stderr=follower,
    )  # fmt: skip
    os.close(follower)
    screen = bytearray()
    loop = asyncio.get_running_loop()

    def drain() -> None:
        try:
            screen.extend(os.read(leader, 65536))
        except OSError:
            loop.remove_reader(leader)

    loop.add_reader(leader, drain)
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
        await asyncio.sleep(0.1)
    finally:
        loop.remove_reader(leader)
        os.close(leader)
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), screen.decode(errors="replace")


async def test_backfill_shows_progress_and_queues_every_slot_once(stack: Stack) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    await stack.company("acme")
    app = await stack.app("-c true")
    template = await stack.template(
        name="minutely", app=app.app.uuid, company="acme", interv="c", cron="* * * * *"
    )
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    window = ("--from", (end - timedelta(minutes=450)).isoformat(), "--to", end.isoformat())

    code, out, screen = await on_terminal("template", "backfill", str(template.id), *window, env=env)
    assert code == 0, (out, screen)
    assert out.strip().endswith("450 queued, 0 already ran")
    assert f"backfill template {template.id}" in screen and "/450" in screen

    again = await jetjobs("template", "backfill", str(template.id), *window, env=env)
    assert again.code == 0, again
    assert again.out.strip().endswith("0 queued, 450 already ran")
    assert again.err == "", "no progress drawn when stderr is not a terminal"

    over = await jetjobs("template", "backfill", str(template.id), *window, "--limit", "100", env=env)
    assert over.code == 1 and "more than 100 slots" in over.err and "Traceback" not in over.err


async def test_bulk_app_import_shows_progress_on_a_terminal(stack: Stack, tmp_path: Path) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    example = json.loads(EXAMPLE.read_text())
    files = []
    for number in range(5):
        path = tmp_path / f"app{number}.json"
        name = {"en": f"Disk report {number}"}
        path.write_text(json.dumps(example | {"uuid": str(uuid.uuid4()), "name": name}))
        files.append(str(path))
    code, out, screen = await on_terminal("app", "import", *files, env=env)
    assert code == 0, (out, screen)
    assert out.count("imported ") == len(files)
    assert "importing apps" in screen and f"/{len(files)}" in screen
