"""The whole system in one test process: store, scheduler and executor on real servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bus import ApiClient, Bus, Layout
from contracts import api
from contracts.api import ApiFailure
from contracts.models import Company, RunTemplate, TemplateSpec
from contracts.records import JobRecord
from executor import ExecutorConfig, ExecutorService
from scheduler import SchedulerConfig, SchedulerService
from store import StoreConfig, StoreService

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout: float = 15.0, what: str = "condition"
) -> T:
    """Poll `probe` until it returns something truthy (tests only; services never poll)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.1)


@dataclass
class Stack:
    """Running services plus an API client to drive them."""

    nats_url: str
    database_url: str
    client: ApiClient
    bus: Bus
    services: list[Any] = field(default_factory=list)

    async def company(self, code: str = "acme") -> Company:
        return await self.client.call("company.create", Company(code=code, name=code.upper()), Company)

    async def app(
        self, cmdparams: str, executable: str = "sh", env: dict[str, Any] | None = None
    ) -> api.AppImported:
        document = {
            "name": f"app {cmdparams[:20]}",
            "executable": executable,
            "cmdparams": cmdparams,
            "environment": env or {},
        }
        return await self.client.call("app.import", api.AppImport(document=document), api.AppImported)

    async def template(self, **values: Any) -> RunTemplate:
        return await self.client.call("template.create", TemplateSpec.model_validate(values), RunTemplate)

    async def run(self, template_id: int, **env: str) -> api.JobQueued:
        return await self.client.call("template.run", api.RunNow(id=template_id, env=env), api.JobQueued)

    async def job(self, job_id: str) -> JobRecord:
        return await self.client.call("job.get", api.JobRef(id=job_id), JobRecord)

    async def final_job(self, job_id: str, timeout: float = 20.0) -> JobRecord:
        async def probe() -> JobRecord | None:
            try:
                job = await self.job(job_id)
            except ApiFailure as failure:  # dispatched, not recorded yet
                if failure.code != 404:
                    raise
                return None
            return job if job.final else None

        return await eventually(probe, timeout, f"job {job_id} to finish")

    async def jobs(self, **query: Any) -> list[JobRecord]:
        reply = await self.client.call("job.list", api.JobQuery(**query), api.JobList)
        return reply.jobs


def make_store(nats_url: str, database_url: str, layout: Layout | None = None) -> StoreService:
    return StoreService(StoreConfig(nats_url=nats_url, database_url=database_url), layout or Layout())


def make_scheduler(nats_url: str, layout: Layout | None = None) -> SchedulerService:
    return SchedulerService(SchedulerConfig(nats_url=nats_url), layout or Layout())


def make_executor(nats_url: str, slots: int = 4, layout: Layout | None = None) -> ExecutorService:
    return ExecutorService(ExecutorConfig(nats_url=nats_url, slots=slots), layout or Layout())


@asynccontextmanager
async def running_stack(
    nats_url: str,
    database_url: str,
    *,
    scheduler: bool = True,
    layout: Layout | None = None,
    token: str | None = None,
) -> AsyncIterator[Stack]:
    """Start the services (store first: it provisions and migrates), stop them after;
    the client presents `token` when given."""
    services: list[Any] = [make_store(nats_url, database_url, layout), make_executor(nats_url, layout=layout)]
    if scheduler:
        services.append(make_scheduler(nats_url, layout))
    started: list[Any] = []
    bus = await Bus.attach(nats_url, "jetjobs-test")
    try:
        for service in services:
            await service.start()
            started.append(service)
        yield Stack(nats_url, database_url, ApiClient(bus.nc, token=token), bus, started)
    finally:
        for service in reversed(started):
            await service.stop()
        await bus.nc.close()
