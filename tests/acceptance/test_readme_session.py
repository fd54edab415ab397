"""The README's first session, command by command, with the example app it ships."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.acceptance.cli import clean_env, jetjobs
from tests.stack import Stack, running_stack

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "disk-report.multiflexi.app.json"


@pytest.fixture
async def stack(nats_url: str, database_url: str):  # type: ignore[no-untyped-def]
    async with running_stack(nats_url, database_url, scheduler=False) as running:
        yield running


def readme_session() -> list[str]:
    """The `jetjobs` command lines of the README's first session (continuations joined)."""
    text = (ROOT / "README.md").read_text().replace("\\\n", " ")
    head = ".venv/bin/jetjobs company create"
    block = head + text.split(head, 1)[1].split("```", 1)[0]
    return [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines() if line.strip()]


async def test_the_readme_session_runs_as_written(stack: Stack, tmp_path: Path) -> None:
    session = readme_session()
    uuid = json.loads(EXAMPLE.read_text())["uuid"]
    assert session[1] == f".venv/bin/jetjobs app import {EXAMPLE.relative_to(ROOT)}"
    assert f"--app {uuid}" in session[2]
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)

    def args(line: str) -> list[str]:
        return [w.strip('"') for w in re.findall(r'"[^"]*"|\S+', line.removeprefix(".venv/bin/jetjobs "))]

    assert (await jetjobs(*args(session[0]), env=env)).code == 0
    imported = await jetjobs("app", "import", str(EXAMPLE), env=env)
    assert imported.code == 0 and "imported Disk report" in imported.out, imported
    created = json.loads((await jetjobs("--json", *args(session[2]), env=env)).out)
    assert created["timezone"] == "Europe/Prague" and created["env"] == {"REPORT_PATH": "/tmp"}

    run = await jetjobs("--json", "job", "run", str(created["id"]), "--wait", env=env)
    assert run.code == 0, run
    job = json.loads(run.out)
    assert job["status"] == "processed" and "Filesystem" in job["stdout"]

    listed = json.loads((await jetjobs("--json", *args(session[4]), env=env)).out)
    assert [j["id"] for j in listed] == [job["id"]]
    shown = await jetjobs(*args(session[5].replace("<job-id>", job["id"])), env=env)
    assert shown.code == 0 and job["id"] in shown.out
    out = tmp_path / "reports"
    fetch = session[6].replace("<job-id>", job["id"]).replace("reports/", str(out))
    fetched = await jetjobs(*args(fetch), env=env)
    assert fetched.code == 0, fetched
    assert "Filesystem" in (out / "disk-report.txt").read_text()
