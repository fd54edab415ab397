"""`jetjobs job logs` once the shared logs stream has dropped a job's output (by age
or size): it says so on stderr, and for a final job of which nothing is left it
prints what the store kept instead of nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from nats.js.errors import NotFoundError

from contracts import subjects as s
from contracts.output import LogChunk
from tests.acceptance.cli import clean_env, jetjobs, started
from tests.stack import Stack, eventually, running_stack

pytestmark = pytest.mark.timeout(180)

START_GONE = "the live log stream no longer holds the start of this job's output"
ALL_GONE = "the live log stream no longer holds this job's output"


@pytest.fixture
async def stack(nats_url: str, database_url: str):  # type: ignore[no-untyped-def]
    async with running_stack(nats_url, database_url, scheduler=False) as running:
        yield running


async def _template(stack: Stack, script: str, **fields: Any) -> int:
    await stack.company("acme")
    app = await stack.app(f"-c '{script}'")
    return (await stack.template(name="printer", app=app.app.uuid, company="acme", **fields)).id


async def _job(stack: Stack, script: str) -> str:
    return (await stack.run(await _template(stack, script))).job_id


async def _aged_out(stack: Stack, job_id: str) -> None:
    """Make the logs stream keep a second, and wait until the job's chunks are gone."""
    await _limit_logs(stack, max_age=1.0, duplicate_window=1.0)
    await eventually(lambda: _gone(stack, job_id), 20, "the job's chunks to age out")


async def _limit_logs(stack: Stack, **limits: Any) -> None:
    """Tighten the logs stream's limits as an operator's `Layout` would."""
    info = await stack.bus.js.stream_info(s.LOGS_STREAM)
    await stack.bus.js.update_stream(dataclasses.replace(info.config, **limits))


async def _held(stack: Stack, job_id: str) -> bool:
    """Whether the logs stream still holds any chunk of the job."""
    try:
        await stack.bus.js.get_last_msg(s.LOGS_STREAM, s.logs_subject("acme", job_id))
    except NotFoundError:
        return False
    return True


async def test_a_final_job_whose_output_aged_out_prints_what_the_store_kept(stack: Stack) -> None:
    job_id = await _job(stack, "echo hello-from-job; echo err-line >&2")
    job = await stack.final_job(job_id)
    assert (job.stdout, job.stderr) == ("hello-from-job\n", "err-line\n"), job
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    fresh = await jetjobs("job", "logs", job_id, env=env)
    assert (fresh.code, fresh.out, fresh.err) == (0, "hello-from-job\n", "err-line\n"), fresh

    await _aged_out(stack, job_id)

    aged = await jetjobs("job", "logs", job_id, env=env)
    assert aged.code == 0 and aged.out == "hello-from-job\n", aged
    note, *rest = aged.err.splitlines()
    assert note.startswith(f"job {job_id}: {ALL_GONE}") and f"`jetjobs job show {job_id}`" in note, aged
    assert rest == ["err-line"], aged

    followed = await jetjobs("job", "logs", job_id, "-f", env=env)
    assert followed.code == 0 and followed.out == "hello-from-job\n", followed
    assert ALL_GONE in followed.err and "err-line\n" in followed.err, followed
    assert followed.err.endswith(f"job {job_id} ended: processed, exit code 0\n"), followed

    as_json = await jetjobs("--json", "job", "logs", job_id, env=env)
    chunks = [LogChunk.model_validate_json(line) for line in as_json.out.splitlines()]
    assert [(c.stream, c.data, c.attempt) for c in chunks] == [
        ("stdout", "hello-from-job\n", 1),
        ("stderr", "err-line\n", 1),
    ], as_json
    assert ALL_GONE in as_json.err, as_json


async def _gone(stack: Stack, job_id: str) -> bool:
    return not await _held(stack, job_id)


async def test_a_job_whose_first_chunks_were_dropped_for_size_says_so(stack: Stack) -> None:
    job_id = await _job(stack, "for i in $(seq 12); do echo line-$i; sleep 0.15; done")
    await stack.final_job(job_id)
    js = stack.bus.js
    state = (await js.stream_info(s.LOGS_STREAM)).state
    first, last = state.first_seq, state.last_seq
    assert last - first >= 5, state  # a chunk per line or so: the lines are 150 ms apart

    await _limit_logs(stack, max_bytes=state.bytes)
    while (await js.stream_info(s.LOGS_STREAM)).state.first_seq < first + 3:
        await js.publish(s.logs_subject("other", "noisy"), b"x")  # smaller than any chunk
    assert await _held(stack, job_id)

    result = await jetjobs("job", "logs", job_id, env=clean_env(JETJOBS_NATS_URL=stack.nats_url))
    assert result.code == 0, result
    assert result.out.endswith("line-11\nline-12\n") and "line-1\n" not in result.out, result
    assert result.err.startswith(f"job {job_id}: {START_GONE}"), result
    assert len(result.err.splitlines()) == 1, result


async def test_following_a_running_job_whose_start_is_gone_says_so(stack: Stack, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    script = (
        f"echo first line; for i in $(seq 300); do [ -e {gate} ] && break; sleep 0.1; done; echo second line"
    )
    job_id = await _job(stack, script)
    await eventually(lambda: _held(stack, job_id), 20, "the first chunk")
    await stack.bus.js.purge_stream(s.LOGS_STREAM, subject=s.logs_subject("acme", job_id))

    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    follower = await started("job", "logs", job_id, "-f", env=env)
    try:
        assert not (await stack.job(job_id)).final
        gate.touch()
        out, err = await asyncio.wait_for(follower.communicate(), 30)
    finally:
        if follower.returncode is None:
            follower.kill()
            await follower.wait()
    assert follower.returncode == 0, err
    assert out.decode() == "second line\n"
    lines = err.decode().splitlines()
    assert lines[0].startswith(f"job {job_id}: {START_GONE}"), lines
    assert lines[1:] == [f"job {job_id} ended: processed, exit code 0"], lines
    assert json.loads((await jetjobs("--json", "job", "show", job_id, env=env)).out)["stdout"] == (
        "first line\nsecond line\n"
    )


async def test_attempts_whose_output_is_all_gone_are_named(stack: Stack, tmp_path: Path) -> None:
    """No chunk numbering can tell an attempt whose chunks are all gone from one that
    printed nothing: the attempts that ran before the oldest chunk the stream holds are
    named, and attempts after it are not."""
    marker = tmp_path / "ran-once"
    script = f"if [ -e {marker} ]; then exit 0; fi; touch {marker}; echo first-try; exit 1"
    template_id = await _template(stack, script, retries=1)
    job_id = (await stack.run(template_id)).job_id
    job = await stack.final_job(job_id)
    assert [a.attempt for a in job.attempts] == [1, 2] and job.stdout == "", job
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    fresh = await jetjobs("job", "logs", job_id, env=env)
    assert (fresh.code, fresh.out, fresh.err) == (0, "first-try\n", ""), fresh

    await _aged_out(stack, job_id)
    aged = await jetjobs("job", "logs", job_id, env=env)
    assert aged.code == 0 and aged.out == "", aged
    [note] = aged.err.splitlines()
    assert note.startswith(f"job {job_id}: the live log stream holds nothing stored before "), aged
    assert "whatever attempts 1, 2 printed is gone from it" in note, aged

    await _limit_logs(stack, max_age=3600.0, duplicate_window=120.0)
    await stack.bus.js.publish(s.logs_subject("other", "noisy"), b"x")  # the oldest chunk from now on
    marker.unlink()
    later = (await stack.run(template_id)).job_id  # both its attempts run after it
    await stack.final_job(later)
    quiet = await jetjobs("job", "logs", later, env=env)
    assert (quiet.code, quiet.out, quiet.err) == (0, "first-try\n", ""), quiet
