"""A job that leaves a FIFO, a link to /dev/zero or a link out of its directory where
its results or artifacts are read gets its outcome, with a record of what was
wrong, and its executor (a real subprocess) goes on running jobs: nothing outside
the job's directory is read."""

from __future__ import annotations

import json
import shlex
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from contracts.models import ArtifactSpec
from tests.faults.harness import Faults, faults

pytestmark = pytest.mark.timeout(120)

SECRET = "a file of the host, not of the job"
FINAL_WITHIN = 30.0


@pytest.fixture
async def f(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[Faults]:
    async with faults(nats_url, database_url, tmp_path) as harness:
        yield harness


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the executor's TMPDIR holding a file a job must not get at."""
    folder = tmp_path / "host"
    folder.mkdir()
    (folder / "secret.txt").write_text(json.dumps({"secret": SECRET}))
    return folder


async def executor_in(f: Faults) -> None:
    tmp = f.tmp / "executor-tmp"
    tmp.mkdir()
    await f.ready(f.executor(slots=2, TMPDIR=str(tmp)))


async def only_attempt(f: Faults, script: str, **fields: Any) -> Any:
    """Run `sh -c script` to its final outcome; its one attempt's row."""
    [job_id] = await f.submit(1, ["sh", "-c", script], retries=0, **fields)
    row = (await f.all_final([job_id], FINAL_WITHIN))[job_id]
    assert row["status"] == "processed", row["reason"]
    [attempt] = await f.attempts(job_id)
    return attempt


async def still_runs_jobs(f: Faults) -> None:
    attempt = await only_attempt(f, 'echo \'{"after": "yes"}\' > "$JETJOBS_RESULT_FILE"')
    assert json.loads(attempt["results"]) == {"after": "yes"}


@pytest.mark.parametrize(
    ("leave", "kind"),
    [
        ('mkfifo "$JETJOBS_RESULT_FILE"', "a FIFO"),
        ('ln -s /dev/zero "$JETJOBS_RESULT_FILE"', "a symbolic link"),
        ('ln -s {outside}/secret.txt "$JETJOBS_RESULT_FILE"', "a symbolic link"),
    ],
    ids=["fifo", "dev-zero", "outside"],
)
async def test_a_results_file_that_is_not_a_regular_file_is_reported_not_read(
    f: Faults, outside: Path, leave: str, kind: str
) -> None:
    await executor_in(f)
    attempt = await only_attempt(f, leave.format(outside=shlex.quote(str(outside))))
    results = json.loads(attempt["results"])
    assert results == {"error": f"results file is not a regular file ({kind}): ignored"}
    await still_runs_jobs(f)


ARTIFACTS = {
    "fifo.bin": "a FIFO, not a regular file: not stored",
    "zero.bin": "a symbolic link, not a regular file: not stored",
    "host.txt": "a symbolic link, not a regular file: not stored",
    "loop.txt": "a symbolic link, not a regular file: not stored",
    "linked/secret.txt": "linked on its path is a symbolic link, not a directory: not stored",
}

GLOBBED = {  # what a glob's part names but it does not enter: a link is not followed
    "linked/*.txt": "linked on its path is a symbolic link, not a directory: not stored",
}


async def test_declared_artifacts_that_are_not_regular_files_are_recorded_not_read(
    f: Faults, outside: Path
) -> None:
    await executor_in(f)
    there = shlex.quote(str(outside))
    script = (
        "mkfifo fifo.bin && ln -s /dev/zero zero.bin && ln -s loop.txt loop.txt"
        f" && ln -s {there}/secret.txt host.txt && ln -s {there} linked && echo kept > ok.txt"
    )
    globs = ["linked/*.txt", "**/secret.txt"]
    specs = [ArtifactSpec(path=path) for path in [*ARTIFACTS, *globs, "ok.txt"]]
    attempt = await only_attempt(f, script, artifacts=specs)
    rows = await f.rows(
        "SELECT name, content, over_limit, missing, note FROM artifact WHERE job_id = $1 AND attempt = $2",
        attempt["job_id"],
        attempt["attempt"],
    )
    found = {row["name"]: row for row in rows}
    assert set(found) == {
        *ARTIFACTS,
        *GLOBBED,
        "**/secret.txt",
        "ok.txt",
    }  # a glob lists what it does not read
    assert found["**/secret.txt"]["missing"]  # `**` enters no linked directory
    for name, note in {**ARTIFACTS, **GLOBBED}.items():
        row = found[name]
        assert (row["content"], row["over_limit"], row["missing"], row["note"]) == (None, True, False, note)
    assert bytes(found["ok.txt"]["content"]) == b"kept\n"
    assert not any(SECRET.encode() in bytes(row["content"] or b"") for row in rows)
    await still_runs_jobs(f)
