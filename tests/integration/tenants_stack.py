"""A stack whose store holds a secret key, for the tenant tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bus import ApiClient, Bus, Layout
from contracts.dispatch import adhoc_job_id
from contracts.flows import FlowSpec
from contracts.messages import JobMessage
from executor import ExecutorConfig, ExecutorService
from store import StoreConfig, StoreService
from store.credentials import Keyring, parse_key
from store.db import open_pool
from store.flow_jobs import node_message
from tests.stack import Stack


def keyring(*keys: str) -> Keyring:
    return Keyring([parse_key(k, "test key") for k in keys])


@asynccontextmanager
async def tenant_stack(
    nats_url: str,
    database_url: str,
    ring: Keyring | None,
    executor_actor: str = "executor",
    require_tokens: bool = False,
    token: str | None = None,
    **executor: Any,
) -> AsyncIterator[Stack]:
    """Store (with `ring`) and one executor (configured further by `executor`);
    the caller's client acts as `admin` (authenticated by `token` when given)."""
    store_config = StoreConfig(
        nats_url=nats_url, database_url=database_url, keyring=ring, require_tokens=require_tokens
    )
    store = StoreService(store_config, Layout())
    config = ExecutorConfig(nats_url=nats_url, slots=2, actor=executor_actor, **executor)
    executor_service = ExecutorService(config, Layout())
    started: list[Any] = []
    bus = await Bus.attach(nats_url, "jetjobs-test")
    try:
        for service in (store, executor_service):
            await service.start()
            started.append(service)
        yield Stack(nats_url, database_url, ApiClient(bus.nc, actor="admin", token=token), bus, started)
    finally:
        for service in reversed(started):
            await service.stop()
        await bus.nc.close()


async def sealed_and_clear(
    database_url: str, spec: FlowSpec, env: dict[str, str], ring: Keyring
) -> tuple[JobMessage, JobMessage]:
    """The message of the flow's node `a` made with the store's keyring (its secret
    values sealed for its job) and without one (in clear, masked), each for a new job."""
    pool = await open_pool(database_url, 1)
    try:
        async with pool.acquire() as conn, conn.transaction():
            node = spec.node("a")
            sealed = await node_message(conn, spec, node, adhoc_job_id(), dict(env), keyring=ring)
            clear = await node_message(conn, spec, node, adhoc_job_id(), dict(env))
    finally:
        await pool.close()
    return sealed, clear
