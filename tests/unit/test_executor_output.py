"""Output capture: bounded, truncation visible, bad UTF-8 survives."""

from __future__ import annotations

import asyncio
import os

import pytest

from executor.output import Capture, Pipe, Sink


def test_small_output_is_kept_whole() -> None:
    capture = Capture(100)
    capture.feed(b"hello\n")
    capture.feed(b"world\n")
    assert capture.text() == "hello\nworld\n"
    assert capture.total == 12


def test_output_at_the_limit_has_no_marker() -> None:
    capture = Capture(4)
    capture.feed(b"abcd")
    assert capture.text() == "abcd"


def test_output_over_the_limit_keeps_the_start_and_says_so() -> None:
    capture = Capture(10)
    for _ in range(5):
        capture.feed(b"0123456789abcdef")
    text = capture.text()
    assert text.startswith("0123456789\n")
    assert text.endswith("[jetjobs: output truncated, kept the first 10 of 80 bytes]\n")
    assert capture.total == 80


def test_text_can_be_cut_shorter_than_the_limit() -> None:
    capture = Capture(10)
    capture.feed(b"0123456789")
    assert capture.text(4) == "0123\n[jetjobs: output truncated, kept the first 4 of 10 bytes]\n"
    assert capture.text(50) == "0123456789"


def test_invalid_utf8_is_replaced() -> None:
    capture = Capture(100)
    capture.feed(b"ok \xff\xfe end")
    assert capture.text() == "ok \ufffd\ufffd end"


async def read_to_end(read: int, capture: Capture, sink: Sink | None = None) -> Pipe:
    ended = asyncio.get_running_loop().create_future()
    pipe = Pipe(read, capture, "stdout", sink, lambda: ended.set_result(None))
    await asyncio.wait_for(ended, 10)
    assert pipe.done
    return pipe


async def test_a_pipe_is_read_to_its_end() -> None:
    read, write = os.pipe()

    def writer() -> None:
        with os.fdopen(write, "wb") as pipe:
            pipe.write(b"x" * 200_000)

    capture = Capture(1000)
    await asyncio.gather(read_to_end(read, capture), asyncio.to_thread(writer))
    assert capture.total == 200_000
    assert capture.text().startswith("x" * 1000 + "\n[jetjobs")


async def test_a_slow_sink_gets_every_chunk_in_order_and_is_never_read_ahead_of() -> None:
    read, write = os.pipe()
    lines = b"".join(b"line %d\n" % n for n in range(20_000))
    capture = Capture(len(lines))
    taken: list[bytes] = []

    async def sink(stream: str, chunk: bytes) -> None:
        taken.append(chunk)
        assert capture.total == sum(map(len, taken)), "read ahead of the sink"
        await asyncio.sleep(0.002)

    def writer() -> None:
        with os.fdopen(write, "wb") as pipe:
            for start in range(0, len(lines), 1000):
                pipe.write(lines[start : start + 1000])
                pipe.flush()

    await asyncio.gather(read_to_end(read, capture, sink), asyncio.to_thread(writer))
    assert b"".join(taken) == lines
    assert capture.text() == lines.decode()


async def test_a_failing_sink_ends_the_reading_of_its_stream() -> None:
    read, write = os.pipe()
    os.write(write, b"first")

    async def sink(stream: str, chunk: bytes) -> None:
        raise RuntimeError("gone")

    capture = Capture(100)
    await read_to_end(read, capture, sink)
    with pytest.raises(BrokenPipeError):
        os.write(write, b"more")
    os.close(write)
    assert capture.text() == "first"


async def test_stop_gives_up_a_pipe_held_open_and_a_sink_in_flight() -> None:
    read, write = os.pipe()
    os.write(write, b"stuck")
    entered = asyncio.Event()

    async def sink(stream: str, chunk: bytes) -> None:
        entered.set()
        await asyncio.sleep(60)

    pipe = Pipe(read, Capture(100), "stderr", sink, lambda: None)
    await asyncio.wait_for(entered.wait(), 10)
    await asyncio.wait_for(pipe.stop(), 10)
    assert pipe.done
    with pytest.raises(BrokenPipeError):
        os.write(write, b"more")
    os.close(write)
