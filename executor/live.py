"""Streaming a running job's output to `jetjobs.logs.<company>.<job_id>` as it is written."""

from __future__ import annotations

import codecs

from bus.output import OutputPublisher
from contracts.output import LogChunk

from .events import Attempt, utcnow


class LiveOutput:
    """Turns the raw chunks of one attempt's stdout/stderr into `LogChunk`s.

    Each stream has its own incremental decoder, so a UTF-8 character split
    across two reads arrives whole in one chunk."""

    def __init__(self, attempt: Attempt, publisher: OutputPublisher) -> None:
        self._attempt = attempt
        self._publisher = publisher
        self._decoders = {name: codecs.getincrementaldecoder("utf-8")("replace") for name in STREAMS}
        self._seq = dict.fromkeys(STREAMS, 0)

    async def feed(self, stream: str, data: bytes) -> None:
        """Publish what `stream` just produced (without waiting for it to be stored)."""
        await self._send(stream, self._decoders[stream].decode(data))

    async def close(self) -> None:
        """Flush partial characters and wait until every chunk is stored."""
        for stream, decoder in self._decoders.items():
            await self._send(stream, decoder.decode(b"", final=True))
        await self._publisher.close()

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
        await self._publisher.write(chunk)


STREAMS = ("stdout", "stderr")
