"""Artifacts in Postgres: executors upload what a job left behind (or the record
that it was over a limit, or that a declared file was missing), users list and
download it."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from pydantic import BaseModel

from contracts import tenants as t
from contracts.api import ApiFailure

from .actors import require
from .api import _typed
from .pages import cursor_key, keyed_page
from .tenant_queries import TenantQueries

log = structlog.get_logger("jetjobs.store")

Handler = Callable[[BaseModel], Awaitable[BaseModel]]


def _content(upload: t.ArtifactUpload) -> bytes | None:
    """The uploaded bytes, checked against the size and checksum the executor declared."""
    if upload.missing:
        if upload.content is not None or upload.size or upload.over_limit:
            raise ApiFailure(
                400, f"artifact {upload.name}: marked missing, so it has no content, size or limit"
            )
        return None
    if upload.content is None:
        if not upload.over_limit:
            raise ApiFailure(
                400, f"artifact {upload.name}: no content and not marked over its limit or missing"
            )
        return None
    try:
        content = base64.b64decode(upload.content, validate=True)
    except (binascii.Error, ValueError):
        raise ApiFailure(400, f"artifact {upload.name}: content is not valid base64") from None
    if len(content) != upload.size:
        raise ApiFailure(
            400,
            f"artifact {upload.name}: content is {len(content)} bytes, not the `size` given ({upload.size})",
        )
    if hashlib.sha256(content).hexdigest() != upload.sha256:
        raise ApiFailure(
            400,
            f"artifact {upload.name}: content does not match the `sha256` given: it changed on the way, "
            "or the checksum is of another file; upload it again",
        )
    return content


DISPATCH_WAIT = 3.0
"""Seconds an upload waits for its job's dispatch to be recorded: an executor may end a
short job before the store's projection has taken in its message."""
DISPATCH_POLL = 0.05


async def _await_dispatch(pool: Any, job_id: str) -> None:
    """Return once the job is recorded as dispatched, or after DISPATCH_WAIT seconds."""
    loop = asyncio.get_running_loop()
    until = loop.time() + DISPATCH_WAIT
    while loop.time() < until:
        held = await TenantQueries(pool).hold_job(job_id)
        if held is not None and held[1]:
            return
        await asyncio.sleep(DISPATCH_POLL)


async def _check_dispatched(queries: TenantQueries, upload: t.ArtifactUpload) -> None:
    """A 403 unless the upload's job is a job of its company, recorded as dispatched: a
    job id is predictable, so a row the caller's word made (or only its company's
    events) could take a job another company runs later. A job whose dispatch the store
    has not recorded yet gets a 503, which executors retry."""
    held = await queries.hold_job(upload.job_id)
    if held is not None and held[1] and held[0] != upload.company:
        raise ApiFailure(403, f"job {upload.job_id} is not a job of company '{upload.company}'")
    if held is None or not held[1]:
        raise ApiFailure(
            503,
            f"job {upload.job_id} is not recorded as dispatched yet (the store has not taken in its "
            "message): its artifacts are taken once it is; try again in a moment",
        )


class ArtifactApi:
    """artifact.put / artifact.list / artifact.get."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    def handlers(self) -> dict[str, Handler]:
        return {
            "artifact.put": _typed("artifact.put", t.ArtifactUpload, self.put),
            "artifact.list": _typed("artifact.list", t.ArtifactQuery, self.list),
            "artifact.get": _typed("artifact.get", t.ArtifactRef, self.get),
        }

    async def put(self, upload: t.ArtifactUpload) -> t.ArtifactInfo:
        await require(self._pool, upload.company, "execute")
        content = _content(upload)
        await _await_dispatch(self._pool, upload.job_id)
        async with self._pool.acquire() as conn, conn.transaction():
            queries = TenantQueries(conn)
            await _check_dispatched(queries, upload)
            info = await queries.insert_artifact(upload, content)
        log.info(
            "artifact.stored",
            job_id=upload.job_id,
            company=upload.company,
            attempt=upload.attempt,
            artifact=upload.name,
            size=upload.size,
            over_limit=upload.over_limit,
            missing=upload.missing,
        )
        return info

    async def _job_company(self, job_id: str) -> str:
        brief = await TenantQueries(self._pool).job_brief(job_id)
        if brief is None:
            raise ApiFailure(404, f"unknown job '{job_id}': see `jetjobs job list`")
        return brief[0]

    async def list(self, request: t.ArtifactQuery) -> t.ArtifactList:
        await self._job_company(request.id)
        after = cursor_key("artifact.list", request.after, int, str)
        found = await TenantQueries(self._pool).job_artifacts(
            request.id, request.offset, request.limit + 1, after
        )
        page = keyed_page(found, request.limit, lambda artifact: (artifact.attempt, artifact.name))
        return t.ArtifactList(artifacts=page.items, more=page.more, next=page.next)

    async def get(self, request: t.ArtifactRef) -> t.ArtifactContent:
        await self._job_company(request.job_id)
        found = await TenantQueries(self._pool).artifact_content(
            request.job_id, request.name, request.attempt
        )
        if found is None:
            which = "" if request.attempt is None else f" from attempt {request.attempt}"
            raise ApiFailure(
                404,
                f"job {request.job_id} has no artifact '{request.name}'{which}: "
                f"see `jetjobs job artifacts {request.job_id}`",
            )
        info, content = found
        encoded = None if content is None else base64.b64encode(content).decode()
        return t.ArtifactContent(info=info, content=encoded)
