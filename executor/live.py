"""Streaming a running job's output to `jetjobs.logs.<company>.<job_id>` as it is written."""

from __future__ import annotations

import codecs

from bus import Publisher
from bus.output import OutputPublisher
from contracts.output import LogChunk

from .events import Attempt, utcnow

UTF8 = codecs.getincrementaldecoder("utf-8")

STOPPED = (
    "\n[jetjobs: live output stopped after {limit} bytes, the executor's limit for one attempt "
    "(--live-output-mb); the job runs on, and its outcome keeps the start of each stream]\n"
)


class LiveOutput:
    """Turns the raw chunks of one attempt's stdout/stderr into `LogChunk`s.

    Each stream has its own incremental decoder, so a UTF-8 character split
    across two reads arrives whole in one chunk. Decoders and the chunks'
    publisher are made at the first output: most jobs print little or nothing.

    At most `limit` bytes of both streams together are published: the logs stream
    is shared by every tenant and bounded, so one job printing gigabytes would
    push everyone's history out of it (and hold the executor's connection)."""

    def __init__(self, attempt: Attempt, publisher: Publisher, limit: int) -> None:
        self._attempt = attempt
        self._publisher = publisher
        self._limit = limit
        self._room = limit
        self._stopped = False
        self._output: OutputPublisher | None = None
        self._decoders: dict[str, codecs.IncrementalDecoder] = {}
        self._seq = dict.fromkeys(STREAMS, 0)

    async def feed(self, stream: str, data: bytes) -> None:
        """Publish what `stream` just produced (without waiting for it to be stored),
        up to the limit, where a last chunk says the rest is not published."""
        if self._stopped:
            return
        decoder = self._decoders.get(stream)
        if decoder is None:
            decoder = self._decoders[stream] = UTF8("replace")
        over = len(data) > self._room
        data = data[: self._room]
        self._room -= len(data)
        await self._send(stream, decoder.decode(data))
        if over:
            self._stopped = True
            await self._send(stream, STOPPED.format(limit=self._limit))

    async def close(self) -> None:
        """Flush partial characters and wait until every chunk is stored."""
        for stream in STREAMS:
            decoder = self._decoders.get(stream)
            if decoder is not None and not self._stopped:
                await self._send(stream, decoder.decode(b"", final=True))
        if self._output is not None:
            await self._output.close()

    async def _send(self, stream: str, text: str) -> None:
        if not text:
            return
        message = self._attempt.message
        chunk = LogChunk(
            job_id=message.job_id,
            company=message.company,
            attempt=self._attempt.number,
            stream="stdout" if stream == "stdout" else "stderr",
            seq=self._seq[stream],
            data=text,
            at=utcnow(),
        )
        self._seq[stream] += 1
        if self._output is None:
            self._output = self._publisher.output(message.company, message.job_id, self._attempt.number)
        await self._output.write(chunk)


STREAMS = ("stdout", "stderr")
