"""Collecting the files an application declares (paths or globs relative to
the job's working directory) after the run, within size limits, and handing
them to the store. A file over a limit is recorded with its size and why, one
that is not a regular file of the job's directory (a link, a FIFO, a device),
declared or matched by a glob, with what it is, and a declared file the job did
not leave as missing: none is silently dropped; past FILES_LISTED files, one
record says how many more there were. Files are read before the job's directory
goes and uploaded after its slot is given back; its outcome waits for them at
most UPLOAD_WAIT seconds. While the store is away (PostgreSQL down, no store
running) or slow, uploads wait in memory and are retried in the background, so
that jobs go on running and their files reach the store once it is back."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import mimetypes
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from bus import ApiClient
from bus.tasks import stop_tasks
from contracts.api import ApiFailure
from contracts.messages import JobMessage
from contracts.models import ArtifactSpec
from contracts.tenants import ArtifactInfo, ArtifactUpload

from . import jobfiles
from .jobfiles import Names
from .joblog import JobLog

log = structlog.get_logger("jetjobs.executor")

KIB = 1024
MIB = 1024 * KIB

TRANSIENT = frozenset({503, 504})
"""API failures that say the store is away for now (it cannot reach PostgreSQL, none
runs, or it did not answer in time), not that the request is wrong: an upload waits,
a job whose credentials it is hands the job back (`secrets`)."""
RETRY_FOR = 15 * 60.0
"""Seconds an upload waits for the store to come back before it is given up."""
WAITING_BYTES = 64 * MIB
"""Bytes of uploads one executor keeps in memory while the store is away."""
FIRST_RETRY = 1.0
LAST_RETRY = 60.0
"""Seconds between retries: the first, doubled after each failure up to the last."""
STOP_WAIT = 5.0
"""Seconds a stopping executor gives waiting uploads to reach the store."""
STOPPING = "the executor stopped before the store took it"
UPLOAD_WAIT = 10.0
"""Seconds a job's outcome waits for its artifacts to reach the store: past them (a slow
store), or when the executor stops, the rest are uploaded in the background (`Backlog`),
so a job whose process ended is reported, and never run again, however slow its uploads."""


@dataclass(frozen=True)
class Limits:
    """Bytes one artifact, and all artifacts of one attempt, may hold.
    Defaults keep every upload well inside NATS's 1 MiB message limit."""

    per_artifact: int = 512 * KIB
    per_job: int = 2048 * KIB


MISSING = "declared by the application, but the job left no such file"
UNREAD_NOTES = 100
"""Glob matches that are not regular files an attempt lists one by one: past them,
each glob gives one record saying how many more it matched, so a job leaving
thousands of links cannot flood the store with records."""
FILES_LISTED = 100
"""Regular files an attempt lists (stored, or over a limit), in declaration order and
each glob's matches by name: past them, each declared path or glob gives one record
saying how many more files it matched, so a job leaving thousands of files can neither
flood the store with records nor keep its outcome waiting on their uploads."""


@dataclass
class Room:
    """What an attempt may still store: bytes of content, records of regular files,
    and records of glob matches that are not regular files."""

    bytes: int
    files: int
    unread: int


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


def _matches(root: int, spec: ArtifactSpec) -> jobfiles.Matches:
    """What the spec names below the working directory: the path itself, or what its glob matches."""
    if jobfiles.globbed(spec.path):
        return jobfiles.glob(root, spec.path)
    names = jobfiles.names_of(spec.path)
    return jobfiles.Matches([names] if names else [], [])


def _unlisted(spec: ArtifactSpec, files: int, unread: int) -> Collected:
    """The one record standing for what a spec matched past what an attempt lists: regular
    files past FILES_LISTED, other matches past UNREAD_NOTES."""
    notes = []
    if files:
        notes.append(
            f"{files} more {'file' if files == 1 else 'files'} matched: past the {FILES_LISTED} files "
            "an attempt lists, not listed and not stored (pack them into one archive to keep them all)"
        )
    if unread:
        notes.append(
            f"{unread} more matches of this glob are not regular files (links, FIFOs, devices, sockets), "
            f"or links it does not enter: past the {UNREAD_NOTES} an attempt lists, not listed and not stored"
        )
    note = "; ".join(notes)
    return Collected(spec.name or spec.path, spec.path, "application/octet-stream", 0, "", None, note)


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
    inside the working directory are read (`jobfiles`): a declared path, or a
    glob's match, naming anything else is recorded as not stored, with what it is."""
    root = jobfiles.open_directory(cwd)
    try:
        collected: list[Collected] = []
        room = Room(limits.per_job, FILES_LISTED, UNREAD_NOTES)
        for spec in specs:
            collected.extend(_of_spec(root, spec, room, limits))
        return collected
    finally:
        os.close(root)


def _of_spec(root: int, spec: ArtifactSpec, room: Room, limits: Limits) -> list[Collected]:
    """The records of one declared path or glob, taking what they store from `room`."""
    matches = _matches(root, spec)
    files = matches.files[: room.files]
    listed = matches.unread[: room.unread]
    room.files -= len(files)
    room.unread -= len(listed)
    single = len(matches.files) + len(matches.unread) == 1
    collected: list[Collected] = []
    for path in sorted([*files, *listed]):
        item = _one(root, path, spec, single, room.bytes, limits)
        if item is None:
            continue
        if item.content is not None:
            room.bytes -= item.size
        collected.append(item)
    more, unread = len(matches.files) - len(files), len(matches.unread) - len(listed)
    if more or unread:
        collected.append(_unlisted(spec, more, unread))
    return collected or [_missing(spec)]


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


def _upload_log(upload: ArtifactUpload) -> JobLog:
    return JobLog(job_id=upload.job_id, company=upload.company, attempt=upload.attempt, artifact=upload.name)


@dataclass(frozen=True)
class Waiting:
    """An upload the store could not take yet, and until when (loop time) it is retried."""

    upload: ArtifactUpload
    size: int
    until: float


class Backlog:
    """Uploads the store could not take because it was away (or not in time), sent in the
    background, the oldest first, with backoff: the job's outcome is reported and
    its slot freed without waiting for the store. Bounded in bytes and in time, so
    an outage cannot take the executor's memory."""

    def __init__(
        self, client: ApiClient, capacity: int = WAITING_BYTES, retry_for: float = RETRY_FOR
    ) -> None:
        self._client = client
        self._capacity = capacity
        self._retry_for = retry_for
        self._queue: deque[Waiting] = deque()
        self._bytes = 0
        self._worker: asyncio.Task[None] | None = None
        self._hurry = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queue)

    def hold(self, upload: ArtifactUpload, reason: str) -> bool:
        """Keep `upload` for the background retries, unless the uploads waiting
        already fill the room; False (logged as not stored) then."""
        size = len(upload.content or "")  # its base64 content: what waiting costs in memory
        ulog = _upload_log(upload)
        if self._bytes + size > self._capacity:
            ulog.warning(
                "artifact.not_stored",
                reason=f"{reason}; {self._bytes} bytes of artifacts already wait for the store, and this "
                f"upload's {size} would pass the {self._capacity} bytes an executor keeps: not kept",
            )
            return False
        until = asyncio.get_running_loop().time() + self._retry_for
        self._queue.append(Waiting(upload, size, until))
        self._bytes += size
        ulog.info("artifact.waiting", reason=reason, waiting=len(self._queue), waiting_bytes=self._bytes)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._retry(), name="artifact-retries")
        return True

    async def close(self, wait: float = STOP_WAIT) -> None:
        """Retry at once and give the uploads still waiting `wait` seconds to reach the
        store; those that do not are logged as not stored."""
        worker, self._worker = self._worker, None
        if worker is not None:
            self._hurry.set()
            await stop_tasks([worker], grace=wait)
        for left in self._queue:
            _upload_log(left.upload).warning("artifact.not_stored", reason=STOPPING)
        self._queue.clear()
        self._bytes = 0

    async def _retry(self) -> None:
        """Upload the oldest waiting file until none is left: at once while the store
        takes them, after a pause growing from FIRST_RETRY to LAST_RETRY while it is away."""
        delay = FIRST_RETRY
        await self._pause(delay)
        while True:
            self._expire()
            if not self._queue:
                return
            head = self._queue[0]
            try:
                await self._client.call("artifact.put", head.upload, ArtifactInfo)
            except ApiFailure as failure:
                if failure.code in TRANSIENT:
                    delay = min(2 * delay, LAST_RETRY)
                    _upload_log(head.upload).info(
                        "artifact.upload_retry",
                        reason=failure.message,
                        retry_in=delay,
                        waiting=len(self._queue),
                    )
                    await self._pause(delay)
                    continue
                self._done(head)
                _upload_log(head.upload).warning("artifact.not_stored", reason=failure.message)
                continue
            self._done(head)
            delay = FIRST_RETRY
            _upload_log(head.upload).info("artifact.stored_late", size=head.upload.size)

    def _expire(self) -> None:
        """Give up the uploads that waited their time (the oldest are first)."""
        now = asyncio.get_running_loop().time()
        while self._queue and self._queue[0].until <= now:
            old = self._queue[0]
            self._done(old)
            _upload_log(old.upload).warning(
                "artifact.not_stored",
                reason=f"the store did not take it within {self._retry_for:g} s of the job's end",
            )

    def _done(self, waiting: Waiting) -> None:
        self._queue.popleft()
        self._bytes -= waiting.size

    async def _pause(self, seconds: float) -> None:
        """Sleep, or less when the executor stops (`close`)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._hurry.wait()
        self._hurry.clear()


@dataclass
class Sent:
    """What became of one attempt's uploads so far."""

    stored: int = 0
    waiting: int = 0


async def _send(client: ApiClient, backlog: Backlog, uploads: deque[ArtifactUpload], sent: Sent) -> None:
    """Upload the first of `uploads` until none is left, each taken off once done
    with: what an interruption leaves is still there, the one being sent included
    (uploading it again replaces it)."""
    while uploads:
        upload = uploads[0]
        if backlog:
            sent.waiting += backlog.hold(upload, "earlier artifacts still wait for the store")
        else:
            try:
                await client.call("artifact.put", upload, ArtifactInfo)
                sent.stored += 1
            except ApiFailure as failure:
                if failure.code in TRANSIENT:
                    sent.waiting += backlog.hold(upload, failure.message)
                else:
                    _upload_log(upload).warning("artifact.not_stored", reason=failure.message)
        uploads.popleft()


class ArtifactCollector:
    """Collects an attempt's artifacts and stores them through the store API."""

    def __init__(self, client: ApiClient | None, limits: Limits | None = None) -> None:
        self._client = client
        self._limits = limits or Limits()
        self._backlog = None if client is None else Backlog(client)

    async def collect(self, message: JobMessage, attempt: int, cwd: str) -> Sequence[Collected]:
        """Read the declared files, in a thread, while the job's directory is still
        there; nothing for a job that declares none. A directory that cannot be read
        is logged, not raised: the job's outcome does not depend on its artifacts."""
        if not message.artifacts:
            return ()
        try:
            return await asyncio.to_thread(collect, cwd, message.artifacts, self._limits)
        except (OSError, jobfiles.NotRegular) as error:
            reason = f"the job's directory cannot be read: {error}"
            _job_log(message, attempt).warning("artifact.not_collected", reason=reason)
            return ()

    async def upload(
        self, message: JobMessage, attempt: int, found: Sequence[Collected], stop: asyncio.Event
    ) -> int:
        """Upload what `collect` found, the first first, for at most UPLOAD_WAIT seconds or
        until `stop` is set (the executor stops); returns how many the store took now. What
        is left then goes on in the background (`Backlog`), like the uploads of a store that
        is away (a 503 or 504) and, while those wait, new ones: they join them rather than
        hold the job on a store that may take the client's whole timeout to fail."""
        jlog = _job_log(message, attempt)
        if self._client is None or self._backlog is None:
            for item in found:
                jlog.warning("artifact.not_stored", artifact=item.name, reason="no store client")
            return 0
        uploads = deque(upload_of(message, attempt, item) for item in found)
        sent = Sent()
        sending = asyncio.ensure_future(_send(self._client, self._backlog, uploads, sent))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((sending, stopping), timeout=UPLOAD_WAIT, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await stop_tasks([sending, stopping])
        late = (
            "the executor is stopping, or the job was cancelled"
            if stop.is_set()
            else f"the store took over {UPLOAD_WAIT:g} s for the job's artifacts"
        )
        sent.waiting += sum(self._backlog.hold(upload, late) for upload in uploads)
        missing = sum(item.missing for item in found)
        jlog.info(
            "job.artifacts",
            stored=sent.stored,
            waiting=sent.waiting,
            found=len(found) - missing,
            missing=missing,
        )
        return sent.stored

    async def close(self) -> None:
        """The executor stops: a short last chance for the uploads waiting for the store."""
        if self._backlog is not None:
            await self._backlog.close()


def _job_log(message: JobMessage, attempt: int) -> JobLog:
    return JobLog(job_id=message.job_id, company=message.company, attempt=attempt)
