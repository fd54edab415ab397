"""`jetjobs job logs -f` and `jetjobs events --company` given something that does not
exist: one clear error within seconds, never a silent wait."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.msg import Msg

from jetjobs.observe.logs import APPEAR_WAIT, CHECK_WAIT
from tests.acceptance.cli import clean_env, jetjobs
from tests.acceptance.test_cli import one_line_error
from tests.stack import Stack, running_stack

pytestmark = pytest.mark.timeout(60)

PROMPT = 10.0
"""What a user waits at most for the error, as the tester's `timeout 10 jetjobs …` did."""


@pytest.fixture
async def stack(nats_url: str, database_url: str):  # type: ignore[no-untyped-def]
    async with running_stack(nats_url, database_url, scheduler=False) as running:
        yield running


@pytest.mark.parametrize("job_id", ["garbage", "0b9f4c3e-5d1a-4c8e-9f2b-7a6d5e4c3b2a"])
async def test_job_logs_follow_of_an_unknown_job_fails_after_a_bounded_wait(
    stack: Stack, job_id: str
) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    began = time.monotonic()
    result = await jetjobs("job", "logs", job_id, "-f", env=env, timeout=PROMPT)
    took = time.monotonic() - began
    assert result.code == 1, result
    assert result.out == ""
    assert result.err.strip() == f"jetjobs: error: no job {job_id}: check the id with `jetjobs job list`"
    assert took >= APPEAR_WAIT, "a job just queued gets its moment to reach the store"


async def test_events_of_an_unknown_company_is_one_clear_line(stack: Stack) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    result = await jetjobs("events", "--company", "nosuch", env=env, timeout=PROMPT)
    one_line_error(result, "unknown company 'nosuch': create it with `jetjobs company create nosuch`")
    assert result.out == ""


@contextlib.asynccontextmanager
async def following_acme(nats_url: str, note_within: float) -> AsyncIterator[tuple[str, str]]:
    """`jetjobs events --company acme` running: its first two stderr lines (the note,
    then what it follows), read within `note_within` and `PROMPT` seconds; killed after."""
    tail = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jetjobs", "events", "--company", "acme",
        env=clean_env(JETJOBS_NATS_URL=nats_url),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert tail.stderr is not None
        note = (await asyncio.wait_for(tail.stderr.readline(), note_within)).decode()
        following = (await asyncio.wait_for(tail.stderr.readline(), PROMPT)).decode()
        assert tail.returncode is None, "it keeps following"
        yield note, following
    finally:
        if tail.returncode is None:
            tail.kill()
        await tail.wait()


async def test_events_without_a_store_warns_and_follows_all_the_same(nats_url: str) -> None:
    """Watching events needs only NATS: with no store to ask, the company is not
    checked, and the command says so on stderr and follows."""
    async with following_acme(nats_url, PROMPT) as (note, following):
        assert "could not check that company 'acme' exists" in note, note
        assert "no jetjobs store is answering" in note, note
        assert "following jetjobs.events.acme.*" in following, following


async def test_events_with_a_hung_store_follows_after_a_short_wait(nats_url: str) -> None:
    """A store that takes requests and never answers (stopped, deadlocked) holds the
    company check for a few seconds, not for the API's full timeout."""
    hung = await nats.connect(nats_url)
    await hung.subscribe("jetjobs.api.company.list", cb=ignore)
    try:
        async with following_acme(nats_url, CHECK_WAIT + 5) as (note, following):
            assert f"the store did not answer within {CHECK_WAIT:g} s" in note, note
            assert "following jetjobs.events.acme.*" in following, following
    finally:
        await hung.close()


async def ignore(msg: Msg) -> None:
    """Take a request and never answer it."""
