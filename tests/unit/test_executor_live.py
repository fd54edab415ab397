"""Live output: chunks in order per stream, whole characters, and nothing set up for a silent job."""

from __future__ import annotations

from contracts.output import LogChunk
from executor.events import Attempt
from executor.live import LiveOutput
from tests.unit.jobs import message


class Chunks:
    """An attempt's output publisher that keeps what it is given."""

    def __init__(self) -> None:
        self.written: list[LogChunk] = []
        self.closed = False

    async def write(self, chunk: LogChunk) -> None:
        self.written.append(chunk)

    async def close(self) -> None:
        self.closed = True


class Publisher:
    def __init__(self) -> None:
        self.opened: list[tuple[str, str, int]] = []
        self.chunks = Chunks()

    def output(self, company: str, job_id: str, attempt: int) -> Chunks:
        self.opened.append((company, job_id, attempt))
        return self.chunks


def attempt() -> Attempt:
    return Attempt(message(), 3, "r1")


async def test_split_characters_arrive_whole_and_each_stream_counts_its_chunks() -> None:
    publisher = Publisher()
    live = LiveOutput(attempt(), publisher, 1000)  # type: ignore[arg-type]
    await live.feed("stdout", "né".encode()[:2])
    await live.feed("stderr", b"oops\xc3")
    await live.feed("stdout", "né\n".encode()[2:])
    await live.close()
    assert publisher.opened == [("acme", "j1", 3)] and publisher.chunks.closed
    assert [(c.stream, c.seq, c.data, c.attempt) for c in publisher.chunks.written] == [
        ("stdout", 0, "n", 3),
        ("stderr", 0, "oops", 3),
        ("stdout", 1, "é\n", 3),
        ("stderr", 1, "\ufffd", 3),
    ]


async def test_a_silent_job_opens_no_publisher() -> None:
    publisher = Publisher()
    live = LiveOutput(attempt(), publisher, 1000)  # type: ignore[arg-type]
    await live.close()
    assert publisher.opened == [] and publisher.chunks.written == []


async def test_output_past_the_limit_is_cut_with_a_last_chunk_that_says_so() -> None:
    publisher = Publisher()
    live = LiveOutput(attempt(), publisher, 10)  # type: ignore[arg-type]
    await live.feed("stdout", b"12345")
    await live.feed("stderr", "abcé".encode())
    await live.feed("stdout", b"more")
    await live.feed("stderr", b"and more")
    await live.close()
    written = [(c.stream, c.data) for c in publisher.chunks.written]
    assert written[:2] == [("stdout", "12345"), ("stderr", "abcé")]
    assert written[2][0] == "stdout" and written[2][1].startswith(
        "\n[jetjobs: live output stopped after 10 bytes"
    )
    assert len(written) == 3 and publisher.chunks.closed
