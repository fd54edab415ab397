"""Collecting the files an application declares (paths or globs relative to
the job's working directory) after the run, within size limits, and handing
them to the store. A file over a limit is recorded with its size and why, one
that is not a regular file of the job's directory (a link, a FIFO, a device)
with what it is, and a declared file the job did not leave as missing: none is
silently dropped."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import mimetypes
import os
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from bus import ApiClient
from contracts.api import ApiFailure
from contracts.messages import JobMessage
from contracts.models import ArtifactSpec
from contracts.tenants import ArtifactInfo, ArtifactUpload

from . import jobfiles
from .jobfiles import Names

log = structlog.get_logger("jetjobs.executor")

KIB = 1024


@dataclass(frozen=True)
class Limits:
    """Bytes one artifact, and all artifacts of one attempt, may hold.
    Defaults keep every upload well inside NATS's 1 MiB message limit."""

    per_artifact: int = 512 * KIB
    per_job: int = 2048 * KIB


MISSING = "declared by the application, but the job left no such file"


@dataclass(frozen=True)
class Collected:
    """One file found after the run: its bytes, or None when over a limit or missing."""

    name: str
    path: str
    content_type: str
    size: int
    sha256: str
    content: bytes | None
    note: str | None = None
    missing: bool = False


def _missing(spec: ArtifactSpec) -> Collected:
    """The record of a declared path or glob that matched no file."""
    kind = spec.content_type or "application/octet-stream"
    return Collected(spec.name or spec.path, spec.path, kind, 0, "", None, MISSING, missing=True)


def _matches(root: int, spec: ArtifactSpec) -> list[Names]:
    """What the spec names below the working directory: the path itself, or what its glob matches."""
    if jobfiles.globbed(spec.path):
        return jobfiles.glob(root, spec.path)
    names = jobfiles.names_of(spec.path)
    return [names] if names else []


def _over(size: int, room: int, limits: Limits) -> str | None:
    """Why a file of `size` bytes is not stored, if it is not."""
    if size > limits.per_artifact:
        return f"{size} bytes is over the per-artifact limit of {limits.per_artifact} bytes: not stored"
    if size > room:
        return (
            f"{size} bytes would pass the per-job limit of {limits.per_job} bytes: the files stored "
            f"before it leave {room} bytes; not stored"
        )
    return None


def _refused(wrong: jobfiles.NotRegular) -> str:
    if wrong.where:
        return f"{wrong.where} on its path is {wrong.kind}, not a directory: not stored"
    return f"{wrong.kind}, not a regular file: not stored"


def _one(
    root: int, names: Names, spec: ArtifactSpec, single: bool, room: int, limits: Limits
) -> Collected | None:
    """The file at `names`, read within the limits; None when it is not there."""
    relative = "/".join(names)
    name = spec.name if spec.name and single else relative
    kind = spec.content_type or mimetypes.guess_type(names[-1])[0] or "application/octet-stream"
    try:
        fd = jobfiles.open_below(root, names)
    except FileNotFoundError:
        return None
    except jobfiles.NotRegular as wrong:
        return Collected(name, relative, kind, 0, "", None, _refused(wrong))
    except OSError as error:
        return Collected(name, relative, kind, 0, "", None, f"cannot be read: {error.strerror}: not stored")
    content = b""
    try:
        size = os.fstat(fd).st_size
        note = _over(size, room, limits)
        if note is None:
            content = jobfiles.read_at_most(fd, min(limits.per_artifact, room))
            size = len(content)
            note = _over(size, room, limits)  # it grew after its size was taken
    finally:
        os.close(fd)
    if note is not None:
        return Collected(name, relative, kind, size, "", None, note)
    return Collected(name, relative, kind, size, hashlib.sha256(content).hexdigest(), content)


def collect(cwd: str, specs: Sequence[ArtifactSpec], limits: Limits) -> list[Collected]:
    """Every declared file, in declaration order; a declared path or glob that
    matches no file gives one record that it is missing. Only regular files
    inside the working directory are read (`jobfiles`): a declared path naming
    anything else is recorded as not stored, with what it is, and a glob matches
    regular files only."""
    root = jobfiles.open_directory(cwd)
    try:
        collected: list[Collected] = []
        room = limits.per_job
        for spec in specs:
            paths = _matches(root, spec)
            found = 0
            for path in paths:
                item = _one(root, path, spec, len(paths) == 1, room, limits)
                if item is None:
                    continue
                if item.content is not None:
                    room -= item.size
                collected.append(item)
                found += 1
            if not found:
                collected.append(_missing(spec))
        return collected
    finally:
        os.close(root)


def upload_of(message: JobMessage, attempt: int, item: Collected) -> ArtifactUpload:
    return ArtifactUpload(
        job_id=message.job_id,
        company=message.company,
        attempt=attempt,
        name=item.name,
        path=item.path,
        content_type=item.content_type,
        size=item.size,
        sha256=item.sha256,
        content=None if item.content is None else base64.b64encode(item.content).decode(),
        over_limit=item.content is None and not item.missing,
        missing=item.missing,
        note=item.note,
    )


class ArtifactCollector:
    """Collects an attempt's artifacts and stores them through the store API."""

    def __init__(self, client: ApiClient | None, limits: Limits | None = None) -> None:
        self._client = client
        self._limits = limits or Limits()

    async def store(self, message: JobMessage, attempt: int, cwd: str) -> int:
        """Collect and upload; returns how many were recorded. Failures are logged, not raised:
        the job's outcome does not depend on its artifacts."""
        if not message.artifacts:
            return 0
        jlog = log.bind(job_id=message.job_id, company=message.company, attempt=attempt)
        try:
            found = await asyncio.to_thread(collect, cwd, message.artifacts, self._limits)
        except (OSError, jobfiles.NotRegular) as error:
            jlog.warning("artifact.not_collected", reason=f"the job's directory cannot be read: {error}")
            return 0
        stored = 0
        for item in found:
            if self._client is None:
                jlog.warning("artifact.not_stored", artifact=item.name, reason="no store client")
                continue
            try:
                await self._client.call("artifact.put", upload_of(message, attempt, item), ArtifactInfo)
                stored += 1
            except ApiFailure as failure:
                jlog.warning("artifact.not_stored", artifact=item.name, reason=failure.message)
        if found:
            missing = sum(item.missing for item in found)
            jlog.info("job.artifacts", stored=stored, found=len(found) - missing, missing=missing)
        return stored
