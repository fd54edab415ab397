"""A job's process group, watched through the event loop: exit, output, deadline,
abort, what is left of the group, and pipes held open by a process that left it."""

from __future__ import annotations

import asyncio
import os
import select
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from executor import output, process
from executor.output import Sink
from executor.poller import poller
from executor.process import Aborted, Exited, Launch, NotRunnable, Running, TimedOut, launch
from executor.waiting import first, when_set

FAR = 1e9


def alive(pid: int) -> bool:
    """Running, not a zombie left for whoever adopted it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


async def gone(pid: int) -> bool:
    """A group's KILL reaches its members asynchronously."""
    for _ in range(200):
        if not alive(pid):
            return True
        await asyncio.sleep(0.01)
    return False


async def start(argv: Sequence[str], cwd: Path, sink: Sink | None = None) -> Running:
    running = await launch(Launch(argv, dict(os.environ), str(cwd), 1_000_000, "unit", on_output=sink))
    assert isinstance(running, Running)
    return running


async def sh(script: str, cwd: Path) -> Running:
    """Run `script` to its end."""
    running = await start(["sh", "-c", script], cwd)
    await running.finish(FAR, asyncio.Event(), grace=5)
    return running


async def test_exit_status_and_both_streams(tmp_path: Path) -> None:
    running = await start(["sh", "-c", "echo out; echo err >&2; exit 3"], tmp_path)
    assert await running.finish(FAR, asyncio.Event(), 5) == Exited(3)
    assert (running.stdout.text(), running.stderr.text()) == ("out\n", "err\n")
    assert await running.wait() == 3


async def test_killed_by_a_signal(tmp_path: Path) -> None:
    running = await start(["sh", "-c", "kill -9 $$"], tmp_path)
    assert await running.finish(FAR, asyncio.Event(), 5) == Exited(137, 9)


async def test_output_written_just_before_exit_is_read_after_it(tmp_path: Path) -> None:
    taken: list[bytes] = []

    async def sink(stream: str, chunk: bytes) -> None:
        if not taken:
            await running.wait()
        taken.append(chunk)

    running = await start(["sh", "-c", "printf first; sleep 0.1; printf second"], tmp_path, sink)
    assert await running.finish(FAR, asyncio.Event(), 5) == Exited(0)
    assert b"".join(taken) == b"firstsecond"
    assert running.stdout.text() == "firstsecond"


async def test_a_slow_sink_holds_back_a_full_pipe_without_losing_output(tmp_path: Path) -> None:
    taken: list[bytes] = []

    async def slow(stream: str, chunk: bytes) -> None:
        taken.append(chunk)
        await asyncio.sleep(0.005)

    running = await start(["head", "-c", "300000", "/dev/zero"], tmp_path, slow)
    assert await running.finish(FAR, asyncio.Event(), 5) == Exited(0)
    assert running.stdout.total == 300_000
    assert b"".join(taken) == bytes(300_000)


TRICKLE = "for i in $(seq 40); do echo line $i; sleep 0.005; done"
"""Forty lines, one write each, a few milliseconds apart: a job reporting progress."""


async def test_trickling_output_gathers_into_few_chunks_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(output, "LINGER", 0.1)
    taken: list[bytes] = []

    async def sink(stream: str, chunk: bytes) -> None:
        taken.append(chunk)

    running = await start(["sh", "-c", TRICKLE], tmp_path, sink)
    assert await running.finish(FAR, asyncio.Event(), 5) == Exited(0)
    assert b"".join(taken) == b"".join(b"line %d\n" % i for i in range(1, 41))
    assert len(taken) < 20, f"{len(taken)} chunks for 40 lines: each line went alone"


async def test_the_end_of_the_process_cuts_the_gathering_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(output, "LINGER", 60.0)
    taken: list[bytes] = []

    async def sink(stream: str, chunk: bytes) -> None:
        taken.append(chunk)

    running = await start(["sh", "-c", "echo first; sleep 0.2; echo last"], tmp_path, sink)
    ending = await asyncio.wait_for(running.finish(FAR, asyncio.Event(), 5), 20)
    assert ending == Exited(0)
    assert b"".join(taken) == b"first\nlast\n"


async def test_a_fast_writer_in_small_writes_is_not_held_back_by_the_gathering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three megabytes in 20-byte writes: were every read followed by a full wait,
    the pipe would fill and the writer stop for a second, well over a hundred times."""
    monkeypatch.setattr(output, "LINGER", 1.0)
    taken: list[int] = []

    async def sink(stream: str, chunk: bytes) -> None:
        taken.append(len(chunk))

    script = 'i=0; while [ $i -lt 150000 ]; do echo "line $i............"; i=$((i+1)); done'
    running = await start(["sh", "-c", script], tmp_path, sink)
    ending = await asyncio.wait_for(running.finish(FAR, asyncio.Event(), 5), 30)
    assert ending == Exited(0)
    assert sum(taken) == running.stdout.total > 3_000_000


async def test_deadline_kills_the_whole_group(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    running = await start(["sh", "-c", "sleep 60 & echo $!; wait"], tmp_path)
    ending = await running.finish(loop.time() + 0.5, asyncio.Event(), 5)
    assert ending == TimedOut()
    assert await gone(int(running.stdout.text()))


async def test_term_ignored_is_followed_by_kill_after_the_grace(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()

    async def sink(stream: str, chunk: bytes) -> None:
        ready.set()

    running = await start(["sh", "-c", "trap '' TERM; echo ready; sleep 60; sleep 60"], tmp_path, sink)
    await ready.wait()
    began = loop.time()
    assert await running.finish(loop.time(), asyncio.Event(), 0.3) == TimedOut()
    assert 0.3 <= loop.time() - began < 3
    assert await running.wait() == -9


async def test_abort_ends_a_running_process(tmp_path: Path) -> None:
    abort = asyncio.Event()
    running = await start(["sleep", "60"], tmp_path)
    asyncio.get_running_loop().call_later(0.2, abort.set)
    assert await running.finish(FAR, abort, 5) == Aborted()
    assert await running.wait() == -15


async def test_abort_set_before_finish(tmp_path: Path) -> None:
    abort = asyncio.Event()
    abort.set()
    running = await start(["sleep", "60"], tmp_path)
    assert await running.finish(FAR, abort, 5) == Aborted()


async def test_close_kills_what_the_leader_left_in_its_group(tmp_path: Path) -> None:
    running = await sh("sleep 60 >/dev/null 2>&1 & echo $!; sleep 0.1", tmp_path)
    assert await gone(int(running.stdout.text()))


async def test_a_process_that_left_the_group_holding_the_pipes_delays_close_only_by_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "READER_GRACE", 0.3)
    escape = "setsid sh -c 'echo $$ > escaped; exec sleep 60' & while [ ! -s escaped ]; do sleep 0.01; done"
    running = await start(["sh", "-c", escape], tmp_path)
    assert await running.wait() == 0
    began = time.monotonic()
    await running.finish(FAR, asyncio.Event(), 5)
    assert 0.3 <= time.monotonic() - began < 3
    escaped = int((tmp_path / "escaped").read_text())
    assert alive(escaped)
    os.kill(escaped, 9)


@pytest.mark.parametrize("missing", ["pidfd", "pidfd and epoll"])
async def test_without_pidfd_a_thread_waits_for_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    def no_pidfd(pid: int) -> int:
        raise OSError("no pidfd here")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    if "epoll" in missing:
        monkeypatch.delattr(select, "epoll")
    running = await sh("echo hi; echo there >&2; exit 4", tmp_path)
    assert (await running.wait(), running.stdout.text(), running.stderr.text()) == (4, "hi\n", "there\n")


async def test_what_cannot_start_says_why(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    for argv, why in (
        (["no-such-command-here"], "not found on PATH of runner unit"),
        ([str(tmp_path / "missing")], "not found on runner unit"),
        ([str(script)], "is not executable by runner unit"),
    ):
        spec = Launch(argv, dict(os.environ), str(tmp_path), 100, "unit")
        started = await launch(spec)
        assert isinstance(started, NotRunnable) and why in started.reason


async def test_first_returns_on_whichever_comes_first() -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()
    event = asyncio.Event()
    await first(done, loop.time() + 0.05, event)
    assert not done.done()
    loop.call_soon(event.set)
    await first(done, FAR, event)
    loop.call_soon(done.set_result, 1)
    await first(done, FAR)
    assert done.result() == 1


async def test_when_set_calls_back_once_and_can_stop_watching() -> None:
    event, calls = asyncio.Event(), []
    watching = when_set(event, lambda: calls.append("a"))
    stop = when_set(event, lambda: calls.append("b"))
    stop()
    event.set()
    await asyncio.sleep(0)
    assert calls == ["a"]
    watching()


async def test_a_reader_removed_by_another_in_the_same_round_is_not_called() -> None:
    readers = poller()
    pipes = [os.pipe(), os.pipe()]
    called: list[int] = []

    def reader(mine: int, other: int) -> Callable[[], None]:
        def read() -> None:
            called.append(mine)
            readers.remove_reader(mine)
            readers.remove_reader(other)

        return read

    (first_read, first_write), (second_read, second_write) = pipes
    readers.add_reader(first_read, reader(first_read, second_read))
    readers.add_reader(second_read, reader(second_read, first_read))
    os.write(first_write, b"x")
    os.write(second_write, b"x")
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(called) == 1
    for fd in (*pipes[0], *pipes[1]):
        os.close(fd)
