"""Artifacts of jobs that end while the store is away (its PostgreSQL stopped, or
no store running) wait in the executor's memory, within a byte bound and a time
bound, and reach the store once it is back; what cannot wait is logged as not
stored, with why."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from bus import ApiClient, Bus
from contracts import api
from contracts import tenants as t
from contracts.api import ApiFailure
from contracts.enums import Status
from contracts.tenants import ArtifactUpload
from executor.artifacts import STOPPING, Backlog
from jetjobs.embedded import PostgresServer
from tests.integration.tenants_stack import tenant_stack
from tests.stack import eventually

pytestmark = pytest.mark.timeout(150)

SEQ = "".join(f"{i}\n" for i in range(1, 20001)).encode()


def _upload(name: str, content: bytes) -> ArtifactUpload:
    return ArtifactUpload(
        job_id="j-away",
        company="acme",
        attempt=1,
        name=name,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        content=base64.b64encode(content).decode(),
    )


@pytest.fixture
async def storeless(nats_url: str) -> AsyncIterator[ApiClient]:
    """A client on a NATS where no store answers: every call fails with 503."""
    bus = await Bus.attach(nats_url, "artifacts-away-test")
    try:
        yield ApiClient(bus.nc)
    finally:
        await bus.nc.close()


async def test_an_artifact_left_while_postgres_is_down_is_stored_once_it_is_back(
    nats_url: str, embedded_postgres: PostgresServer, tmp_path: Path
) -> None:
    embedded_postgres.create_database("artifacts_away")
    go = tmp_path / "go"
    script = f"while [ ! -e {go} ]; do sleep 0.1; done; seq 1 20000 > data.bin"
    async with tenant_stack(nats_url, embedded_postgres.dsn("artifacts_away"), None) as stack:
        executor = stack.services[-1]
        await stack.company("acme")
        document = {
            "name": "away",
            "executable": "sh",
            "cmdparams": f'-c "{script}"',
            "artifacts": ["data.bin"],
        }
        app = await stack.client.call("app.import", api.AppImport(document=document), api.AppImported)
        template = await stack.template(name="away", app=str(app.app.id), company="acme")
        job_id = (await stack.run(template.id)).job_id

        async def running() -> bool:
            return bool(executor.running)

        async def released() -> bool:
            return not executor.running

        async def listed() -> Any:
            try:
                reply = await stack.client.call("artifact.list", api.JobRef(id=job_id), t.ArtifactList)
            except ApiFailure as failure:
                assert failure.code in (404, 503), failure.message
                return None
            return reply.artifacts

        await eventually(running, 20.0, "the job to start")
        try:
            with capture_logs() as logs:
                await asyncio.to_thread(embedded_postgres.stop)
                go.touch()
                await eventually(released, 20.0, "the job to end and give its slot back")
                await asyncio.to_thread(embedded_postgres.restart)
                artifacts = await eventually(listed, 60.0, "the artifact to reach the store")
        finally:
            if not embedded_postgres.running:  # a store stops at once with Postgres up
                await asyncio.to_thread(embedded_postgres.restart)
        assert [(a.name, a.size, a.sha256) for a in artifacts] == [
            ("data.bin", len(SEQ), hashlib.sha256(SEQ).hexdigest())
        ]
        got = await stack.client.call(
            "artifact.get", t.ArtifactRef(job_id=job_id, name="data.bin"), t.ArtifactContent
        )
        assert got.content is not None and base64.b64decode(got.content) == SEQ
        job = await stack.final_job(job_id, timeout=30.0)
        assert job.status is Status.PROCESSED, job.reason
        events = [e["event"] for e in logs if e.get("artifact") == "data.bin"]
        assert "artifact.waiting" in events and "artifact.stored_late" in events
        assert "artifact.not_stored" not in events


async def test_uploads_past_the_byte_bound_are_not_kept(storeless: ApiClient) -> None:
    first, second = _upload("first", b"x" * 1000), _upload("second", b"y" * 1000)
    backlog = Backlog(storeless, capacity=len(first.model_dump_json(exclude_defaults=True)) + 100)
    try:
        with capture_logs() as logs:
            assert backlog.hold(first, "the store is away")
            assert not backlog.hold(second, "the store is away")
        assert len(backlog) == 1
        refused = [e for e in logs if e["event"] == "artifact.not_stored"]
        assert [e["artifact"] for e in refused] == ["second"]
        assert "the store is away;" in refused[0]["reason"] and "not kept" in refused[0]["reason"]
    finally:
        await backlog.close(wait=0)


async def test_stopping_logs_what_still_waits(storeless: ApiClient) -> None:
    backlog = Backlog(storeless)
    with capture_logs() as logs:
        assert backlog.hold(_upload("late", b"z"), "the store is away")
        await backlog.close(wait=0.5)
    assert len(backlog) == 0
    assert [(e["artifact"], e["reason"]) for e in logs if e["event"] == "artifact.not_stored"] == [
        ("late", STOPPING)
    ]


async def test_an_upload_is_given_up_after_its_time(storeless: ApiClient) -> None:
    backlog = Backlog(storeless, retry_for=0.5)
    try:
        with capture_logs() as logs:
            assert backlog.hold(_upload("old", b"z"), "the store is away")

            async def emptied() -> bool:
                return len(backlog) == 0

            await eventually(emptied, 10.0, "the upload to be given up")
        given_up = [e for e in logs if e["event"] == "artifact.not_stored"]
        assert [e["artifact"] for e in given_up] == ["old"]
        assert "did not take it within 0.5 s" in given_up[0]["reason"]
    finally:
        await backlog.close(wait=0)
