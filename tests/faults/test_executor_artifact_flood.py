"""A job that leaves thousands of files matching its artifact glob gets its outcome
promptly, gives its slot back while its files are reported, and is never run again
because its executor stopped while they were uploading: an attempt lists at most
FILES_LISTED files, and one record says how many more there were."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from contracts.models import ArtifactSpec
from executor.artifacts import FILES_LISTED
from tests.faults.harness import Faults, Proc, faults
from tests.stack import eventually

pytestmark = pytest.mark.timeout(180)

GLOB = [ArtifactSpec(path="out/*")]
FINAL_WITHIN = 30.0
"""Seconds for a flooding job's outcome: its files once took ~15 ms each to upload,
one by one, before its outcome was reported."""


@pytest.fixture
async def f(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[Faults]:
    async with faults(nats_url, database_url, tmp_path) as harness:
        yield harness


def executor(f: Faults) -> Proc:
    """An executor of one slot whose jobs work in a folder of this test's."""
    tmp = f.tmp / "executor-tmp"
    tmp.mkdir(exist_ok=True)
    return f.executor(slots=1, TMPDIR=str(tmp))


def flood(files: int, runs: Path, done: Path) -> list[str]:
    """A job that counts its runs in `runs`, leaves `files` empty files in out/ and
    touches `done` as its last act."""
    script = f"echo run >> {runs}; mkdir out && seq 1 {files} | sed 's|^|out/f|' | xargs touch; touch {done}"
    return ["sh", "-c", script]


async def test_a_finished_job_is_not_run_again_when_its_executor_stops_while_its_files_upload(
    f: Faults, tmp_path: Path
) -> None:
    runs, done = tmp_path / "runs", tmp_path / "done"
    first = executor(f)
    await f.ready(first)
    [job_id] = await f.submit(1, flood(6000, runs, done), artifacts=GLOB, retries=2)

    async def ended() -> bool:
        return done.exists()

    await eventually(ended, 30.0, "the job's process to leave its files and end")
    first.signal(signal.SIGTERM)
    asked = asyncio.get_running_loop().time()
    await f.ready(executor(f))
    row = (await f.all_final([job_id], FINAL_WITHIN + 40.0))[job_id]
    code = await asyncio.to_thread(first.popen.wait, 60)
    stopped_in = asyncio.get_running_loop().time() - asked
    assert (row["status"], row["attempt"]) == ("processed", 1), row["reason"]
    assert [a["status"] for a in await f.attempts(job_id)] == ["processed"]
    assert runs.read_text().splitlines() == ["run"]
    assert code == 0 and stopped_in < 20.0, (code, stopped_in, first.tail())

    async def recorded() -> dict[str, str | None] | None:
        rows = await f.rows("SELECT name, note FROM artifact WHERE job_id = $1", job_id)
        return {row["name"]: row["note"] for row in rows} if len(rows) == FILES_LISTED + 1 else None

    notes = await eventually(recorded, 20.0, f"{FILES_LISTED} files and one note to be recorded")
    assert sorted(notes)[:2] == ["out/*", "out/f1"], sorted(notes)[:3]
    assert f"{6000 - FILES_LISTED} more files matched" in (notes["out/*"] or ""), notes["out/*"]


async def test_a_job_whose_process_ended_gives_its_slot_back_while_its_files_are_reported(
    f: Faults, tmp_path: Path
) -> None:
    await f.ready(executor(f))
    [flooding] = await f.submit(1, flood(3000, tmp_path / "runs", tmp_path / "done"), artifacts=GLOB)
    [cheap] = await f.submit(1, ["true"])
    rows = await f.all_final([flooding, cheap], FINAL_WITHIN)
    assert [rows[job]["status"] for job in (flooding, cheap)] == ["processed", "processed"]
    waited = (rows[cheap]["end_at"] - rows[flooding]["end_at"]).total_seconds()
    assert waited < 10.0, f"the cheap job ended {waited:.1f} s after the flooding job's process"
