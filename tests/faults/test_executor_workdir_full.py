"""A job that arrives while the executor's TMPDIR cannot take a new directory (out
of inodes) is handed back with a reason saying so, and runs once there is room:
no traceback, no message left unsettled, no attempt recorded as lost for nothing."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.faults.harness import Faults, faults
from tests.stack import eventually

pytestmark = pytest.mark.timeout(120)

FULL = "cannot create a working directory in TMPDIR"


@pytest.fixture
def tight(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of 200 inodes, unmounted at the end whatever happened."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder = tmp_path / "tight"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "nr_inodes=200,size=50m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.fixture
async def f(nats_url: str, database_url: str, tmp_path: Path, tight: Path) -> AsyncIterator[Faults]:
    async with faults(nats_url, database_url, tmp_path) as harness:
        yield harness


async def test_a_job_without_room_for_its_directory_is_handed_back_and_runs_later(
    f: Faults, tmp_path: Path, tight: Path
) -> None:
    full, go = tmp_path / "full", tmp_path / "go"
    proc = f.executor(slots=2, TMPDIR=str(tight))
    await f.ready(proc)
    filler = f"i=0; while touch f$i 2>/dev/null; do i=$((i+1)); done; touch {full}; "
    filler += f"while [ ! -e {go} ]; do sleep 0.1; done"
    [filling] = await f.submit(1, ["sh", "-c", filler])

    async def filled() -> bool:
        return full.exists()

    await eventually(filled, 30.0, "the first job to use up TMPDIR's inodes")
    [cheap] = await f.submit(1, ["true"], retries=0)

    async def handed_back() -> list[str] | None:
        reasons = [a["reason"] or "" for a in await f.attempts(cheap) if a["status"] == "error"]
        return reasons if reasons else None

    try:
        reasons = await eventually(handed_back, 20.0, "the job to be handed back")
    finally:
        go.touch()
    rows = await f.all_final([filling, cheap], 60.0)
    assert [rows[job]["status"] for job in (filling, cheap)] == ["processed", "processed"]
    attempts = await f.attempts(cheap)
    assert [a["status"] for a in attempts][-1] == "processed"
    assert reasons[0].startswith(f"{FULL} {tight}: No space left on device"), reasons
    for attempt in attempts[:-1]:
        assert (attempt["kind"], FULL in (attempt["reason"] or "")) == ("lost", True), dict(attempt)
    log = proc.log.read_text()
    assert "job.handed_back" in log
    assert "Traceback" not in log and "job.unsettled" not in log, proc.tail()
