"""Collecting the files an application declares (paths or globs relative to
the job's working directory) after the run, within size limits, and handing
them to the store. A file over a limit is recorded with its size and why, and
a declared file the job did not leave is recorded as missing: neither is
silently dropped."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from bus import ApiClient
from contracts.api import ApiFailure
from contracts.messages import JobMessage
from contracts.models import ArtifactSpec
from contracts.tenants import ArtifactInfo, ArtifactUpload

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


def _matches(root: Path, spec: ArtifactSpec) -> list[Path]:
    """Regular files the spec names, inside the working directory only."""
    found = sorted(root.glob(spec.path)) if any(c in spec.path for c in "*?[") else [root / spec.path]
    inside = []
    for path in found:
        resolved = path.resolve()
        if path.is_file() and resolved.is_relative_to(root):
            inside.append(path)
    return inside


def _one(root: Path, path: Path, spec: ArtifactSpec, single: bool, room: int, limits: Limits) -> Collected:
    relative = path.relative_to(root).as_posix()
    name = spec.name if spec.name and single else relative
    kind = spec.content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    size = path.stat().st_size
    if size > limits.per_artifact or size > room:
        if size > limits.per_artifact:
            note = f"{size} bytes is over the per-artifact limit of {limits.per_artifact} bytes: not stored"
        else:
            note = (
                f"{size} bytes would pass the per-job limit of {limits.per_job} bytes: the files stored "
                f"before it leave {room} bytes; not stored"
            )
        return Collected(name, relative, kind, size, "", None, note)
    content = path.read_bytes()
    return Collected(name, relative, kind, len(content), hashlib.sha256(content).hexdigest(), content)


def collect(cwd: str, specs: Sequence[ArtifactSpec], limits: Limits) -> list[Collected]:
    """Every declared file, in declaration order; a declared path or glob that
    matches no file gives one record that it is missing."""
    root = Path(cwd).resolve()
    collected: list[Collected] = []
    room = limits.per_job
    for spec in specs:
        paths = _matches(root, spec)
        if not paths:
            collected.append(_missing(spec))
        for path in paths:
            item = _one(root, path, spec, len(paths) == 1, room, limits)
            if item.content is not None:
                room -= item.size
            collected.append(item)
    return collected


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
        found = await asyncio.to_thread(collect, cwd, message.artifacts, self._limits)
        jlog = log.bind(job_id=message.job_id, company=message.company, attempt=attempt)
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
