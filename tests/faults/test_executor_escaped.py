"""A process that escapes its job's process group (`setsid`, a group of its own) does
not outlive the job: once the job has ended, whatever still works in its directory or
in its session is killed, and the directory serves no other job before it is."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.faults.harness import Faults, Proc, faults
from tests.processes import alive
from tests.stack import eventually

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def f(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[Faults]:
    async with faults(nats_url, database_url, tmp_path) as harness:
        yield harness


def escaping(pid_file: Path, setup: str) -> str:
    """Shell words that start a Python child which runs `setup`, writes its pid to
    `pid_file` and sleeps; they return once the pid is written (after the escape)."""
    child = f"import os, signal, time; {setup}; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(300)"
    at = shlex.quote(str(pid_file))
    return f"python3 -c {shlex.quote(child)} & while [ ! -s {at} ]; do sleep 0.05; done"


def pid_in(path: Path) -> int:
    return int(path.read_text())


@contextlib.contextmanager
def killed_at_the_end(paths: list[Path]) -> Iterator[None]:
    """Whatever the test found, the processes whose pids these files hold do not outlive it."""
    try:
        yield
    finally:
        for path in paths:
            if path.exists() and alive(pid := pid_in(path)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


async def gone(pids: list[int], within: float) -> None:
    async def probe() -> bool:
        return not any(alive(pid) for pid in pids)

    await eventually(probe, within, f"the escaped processes {pids} to be killed")


def logged(proc: Proc, event: str) -> int:
    return proc.tail(400).count(f'"event": "{event}"')


async def told(executor: Proc, event: str, times: int) -> None:
    """The executor's log has `event` `times` times, soon (it logs once the sweep is through)."""

    async def counted() -> bool | None:
        return logged(executor, event) == times or None

    await eventually(counted, 10, f"{times} {event} lines")


async def test_children_that_left_the_group_die_with_a_job_that_exits(f: Faults) -> None:
    own_session, own_group = f.tmp / "own-session.pid", f.tmp / "own-group.pid"
    script = "; ".join(
        [
            escaping(own_session, "os.setsid()"),  # works on in the job's directory
            escaping(own_group, "os.setpgid(0, 0); os.chdir('/')"),  # still in the job's session
            "exit 0",
        ]
    )
    executor = f.executor(slots=1)
    await f.ready(executor)
    with killed_at_the_end([own_session, own_group]):
        [job_id] = await f.submit(1, ["sh", "-c", script])
        row = (await f.all_final([job_id], 30))[job_id]
        assert row["status"] == "processed"
        await gone([pid_in(own_session), pid_in(own_group)], 10)
        await told(executor, "job.escaped_killed", 2)


async def test_a_child_that_left_the_group_and_ignores_term_dies_with_a_timed_out_job(f: Faults) -> None:
    child = f.tmp / "child.pid"
    script = (
        f"{escaping(child, 'os.setsid(); signal.signal(signal.SIGTERM, signal.SIG_IGN)')}; exec sleep 1010"
    )
    executor = f.executor(slots=1)
    await f.ready(executor)
    with killed_at_the_end([child]):
        [job_id] = await f.submit(1, ["sh", "-c", script], timeout_result=2.0, retries=0)
        row = (await f.all_final([job_id], 30))[job_id]
        assert (row["status"], row["kind"]) == ("error", "timeout")
        await gone([pid_in(child)], 20)  # SIGTERM is ignored: SIGKILL after the grace (5 s)
        await told(executor, "job.escaped_killed", 1)


async def test_a_process_left_looping_in_a_directory_never_works_in_the_next_jobs(f: Faults) -> None:
    leftover, copies = f.tmp / "leftover.pid", f.tmp / "copies"
    copies.mkdir()
    loop = f"trap '' TERM; while :; do cp ./* {shlex.quote(str(copies))}/ 2>/dev/null; sleep 0.1; done"
    first = (
        f"setsid sh -c {shlex.quote(f'echo $$ > {leftover}; {loop}')} </dev/null >/dev/null 2>&1 & "
        f"while [ ! -s {leftover} ]; do sleep 0.05; done; pwd > {f.tmp / 'first.dir'}; exit 0"
    )
    second = (
        f"pwd > {f.tmp / 'second.dir'}; "
        f"if kill -0 $(cat {leftover}) 2>/dev/null; then echo alive > {f.tmp / 'seen'}; fi; "
        "echo tenant > secret; sleep 1; rm secret"
    )
    executor = f.executor(slots=1)
    await f.ready(executor)
    with killed_at_the_end([leftover]):
        [first_id] = await f.submit(1, ["sh", "-c", first])
        assert (await f.all_final([first_id], 30))[first_id]["status"] == "processed"
        [second_id] = await f.submit(1, ["sh", "-c", second])
        assert (await f.all_final([second_id], 30))[second_id]["status"] == "processed"
        same_directory = (f.tmp / "first.dir").read_text() == (f.tmp / "second.dir").read_text()
        assert not (same_directory and (f.tmp / "seen").exists()), (
            "a live leftover worked in the next job's directory"
        )
        await gone([pid_in(leftover)], 20)
        assert not (copies / "secret").exists(), "the leftover copied the next job's files"
