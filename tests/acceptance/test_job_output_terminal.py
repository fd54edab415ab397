"""A job's output reaches an operator's terminal shown, not obeyed: `job show` and
`job logs` on a terminal print its escape sequences in `cat -v` notation, and piped
to a file keep them as the job wrote them (but for NUL)."""

from __future__ import annotations

import asyncio
import os
import pty
import select
import subprocess
import sys
import time

import pytest

from tests.acceptance.cli import clean_env, jetjobs
from tests.stack import Stack, running_stack

pytestmark = pytest.mark.timeout(180)

SCRIPT = r'printf "\033]0;owned\007\033[31mred\033[0m nul\000end\n"; printf "err \033]52;c;eA==\007\n" >&2'
"""Retitles the terminal, colours it, and (on stderr) writes its clipboard (OSC 52)."""


@pytest.fixture
async def stack(nats_url: str, database_url: str):  # type: ignore[no-untyped-def]
    async with running_stack(nats_url, database_url, scheduler=False) as running:
        yield running


def on_a_terminal(*args: str, env: dict[str, str], timeout: float = 60.0) -> tuple[int, str]:
    """Run `jetjobs ARGS` with stdout and stderr on a pseudo-terminal; its exit code
    and everything it wrote there."""
    master, slave = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "jetjobs", *args],
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=slave,
            env=env,
        )
    finally:
        os.close(slave)
    written = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 0.5)[0]:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal has closed it
                break
            if not chunk:
                break
            written += chunk
        else:
            process.kill()
    finally:
        os.close(master)
    return process.wait(timeout=10), written.decode(errors="replace")


async def test_job_output_is_escaped_on_a_terminal_and_kept_in_a_pipe(stack: Stack) -> None:
    await stack.company("acme")
    app = await stack.app(f"-c '{SCRIPT}'")
    template = await stack.template(name="hostile", app=app.app.uuid, company="acme")
    job = await stack.final_job((await stack.run(template.id)).job_id)
    assert job.stdout is not None and "\x1b]0;owned\x07" in job.stdout, job
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)

    for command in (("job", "show", job.id), ("job", "logs", job.id)):
        code, shown = await asyncio.to_thread(on_a_terminal, *command, env=env)
        assert code == 0, shown
        assert "^[]0;owned^G^[[31mred^[[0m nul" in shown, shown
        assert "err ^[]52;c;eA==^G" in shown, shown
        assert "\x1b" not in shown and "\x07" not in shown and "\x00" not in shown, shown

    piped = await jetjobs("job", "logs", job.id, env=env)
    assert piped.code == 0, piped
    assert piped.out == "\x1b]0;owned\x07\x1b[31mred\x1b[0m nul\ufffdend\n", piped
    assert piped.err == "err \x1b]52;c;eA==\x07\n", piped
