"""Postgres stopped under a running store: every API call answers 503 saying the
store cannot reach PostgreSQL, whichever layer met the outage first (the token
check, the actor check or the handler), logged as a warning, never as a traceback;
once Postgres is back, the same calls answer again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel
from structlog.testing import capture_logs

from bus import ApiClient, Bus
from contracts import api
from contracts import tenants as t
from contracts.api import ApiFailure
from contracts.models import Company
from jetjobs.embedded import PostgresServer
from store.tokens import bootstrap_token
from tests.acceptance.cli import clean_env, jetjobs
from tests.stack import eventually, make_store

pytestmark = pytest.mark.timeout(120)

UNREACHABLE = "the store cannot reach PostgreSQL right now; try again shortly"


@pytest.fixture
async def store_url(nats_url: str, embedded_postgres: PostgresServer) -> AsyncIterator[str]:
    """A store on a PostgreSQL of its own (which the test stops), with company `demo`
    closed to all but its admin `ops`."""
    embedded_postgres.create_database("api_outage")
    store = make_store(nats_url, embedded_postgres.dsn("api_outage"))
    await store.start()
    try:
        bus = await Bus.attach(nats_url, "outage-test")
        try:
            await ApiClient(bus.nc).call("company.create", Company(code="demo", name="Demo"), Company)
            grant = t.ActorGrant(company="demo", actor="ops", role="admin", close=True)
            await ApiClient(bus.nc).call("actor.grant", grant, t.ActorList)
        finally:
            await bus.nc.close()
        yield embedded_postgres.dsn("api_outage")
    finally:
        if not embedded_postgres.running:  # a store stops at once with Postgres up
            await asyncio.to_thread(embedded_postgres.restart)
        await store.stop()


async def _refusal(client: ApiClient, op: str, request: BaseModel) -> ApiFailure:
    with pytest.raises(ApiFailure) as caught:
        await client.call(op, request, api.OPERATIONS[op].reply)
    return caught.value


async def test_every_call_answers_503_while_postgres_is_down(
    nats_url: str, embedded_postgres: PostgresServer, store_url: str
) -> None:
    token = (await bootstrap_token(store_url, t.TokenCreate(actor="ops"))).token  # never checked yet
    bus = await Bus.attach(nats_url, "outage-test")
    try:
        ops = ApiClient(bus.nc, actor="ops")
        calls: list[tuple[ApiClient, str, BaseModel]] = [
            (ops, "job.list", api.JobQuery(company="demo")),  # the actor check asks Postgres first
            (ops, "template.list", api.TemplateQuery(company="demo")),
            (ApiClient(bus.nc, token=token), "company.list", api.CompanyQuery()),  # the token check does
            (ops, "company.list", api.CompanyQuery()),  # only the handler does
        ]
        await asyncio.to_thread(embedded_postgres.stop)
        with capture_logs() as logs:
            refused = [await _refusal(client, op, request) for client, op, request in calls]
        assert [(r.code, r.message) for r in refused] == [(503, f"{op}: {UNREACHABLE}") for _, op, _ in calls]
        failed = [e for e in logs if e["event"] == "api.failed"]
        assert not failed, f"logged as internal errors: {failed}"
        warned = [e["operation"] for e in logs if e["event"] == "store.db_unavailable"]
        assert warned == [op for _, op, _ in calls]
        assert {e["log_level"] for e in logs if e["event"] == "store.db_unavailable"} == {"warning"}

        cli = await jetjobs(
            "job", "list", "--company", "demo", env=clean_env(JETJOBS_NATS_URL=nats_url, JETJOBS_ACTOR="ops")
        )
        assert (
            cli.code == 1 and cli.err.strip().splitlines()[-1] == f"jetjobs: error: job.list: {UNREACHABLE}"
        )

        await asyncio.to_thread(embedded_postgres.restart)

        async def answered() -> Any:
            try:
                for client, op, request in calls:
                    await client.call(op, request, api.OPERATIONS[op].reply)
            except ApiFailure as failure:
                assert failure.code == 503, failure.message
                return False
            return True

        await eventually(answered, 30.0, "the calls to answer once Postgres is back")
    finally:
        await bus.nc.close()
