"""Live job output: the chunks an executor publishes to `jetjobs.logs.<company>.<job_id>`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import AwareDatetime, Code, Frozen, JobId


class LogChunk(Frozen):
    """A piece of a job's stdout or stderr, published as the process writes it."""

    job_id: JobId
    company: Code
    attempt: int = Field(ge=1, description="the attempt whose process wrote it")
    stream: Literal["stdout", "stderr"]
    seq: int = Field(ge=0, description="position of this chunk among the attempt's chunks of this stream")
    data: str = Field(description="the bytes written, decoded as UTF-8 with replacement")
    at: AwareDatetime
