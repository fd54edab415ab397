"""Output capture: bounded, truncation visible, bad UTF-8 survives."""

from __future__ import annotations

import asyncio
import os

from executor.output import Capture, collect


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


async def test_collect_reads_a_pipe_to_eof() -> None:
    read, write = os.pipe()
    os.set_blocking(read, False)

    def writer() -> None:
        with os.fdopen(write, "wb") as pipe:
            pipe.write(b"x" * 200_000)

    capture = Capture(1000)
    await asyncio.gather(collect(read, capture), asyncio.to_thread(writer))
    assert capture.total == 200_000
    assert capture.text().startswith("x" * 1000 + "\n[jetjobs")
