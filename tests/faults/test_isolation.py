"""Bus isolation: nats-server started with deploy/nats/isolation.conf; a company-A
executor can pull and publish only its own company's subjects."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig

from bus import Layout
from bus.infra import provision
from contracts import subjects as s
from contracts.tenants import tenant_consumer
from jetjobs.embedded import NatsServer
from tests.servers import shutdown

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "nats" / "isolation.conf"
USERS = ("STORE", "SCHEDULER", "EXEC_ACME", "EXEC_GLOBEX")


@pytest.fixture
def passwords(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    chosen = {user: secrets.token_hex(12) for user in USERS}
    for user, password in chosen.items():
        monkeypatch.setenv(f"JETJOBS_NATS_{user}_PASSWORD", password)
    return chosen


@pytest.fixture
def isolated_nats(tmp_path: Path, passwords: dict[str, str]) -> Iterator[NatsServer]:
    server = NatsServer.start(tmp_path / "nats", config_file=CONFIG)
    try:
        yield server
    finally:
        shutdown(server)


class Client_:
    """A connection that records the permission errors the server reports."""

    def __init__(self) -> None:
        self.nc = Client()
        self.errors: list[str] = []

    async def error(self, error: Exception) -> None:
        self.errors.append(str(error))

    async def violated(self, subject: str) -> bool:
        for _ in range(50):
            if any(
                "permissions violation" in e.lower() and subject.lower() in e.lower() for e in self.errors
            ):
                return True
            await asyncio.sleep(0.05)
        return False


async def _connect(server: NatsServer, user: str, password: str, inbox: str = "_INBOX") -> Client_:
    client = Client_()
    await client.nc.connect(
        servers=[f"nats://{server.host}:{server.port}"],
        user=user,
        password=password,
        inbox_prefix=inbox,
        error_cb=client.error,
        allow_reconnect=False,
        connect_timeout=5,
    )
    return client


@pytest.fixture
async def store_conn(isolated_nats: NatsServer, passwords: dict[str, str]) -> AsyncIterator[Client_]:
    client = await _connect(isolated_nats, "store", passwords["STORE"])
    js = client.nc.jetstream(timeout=10)
    await provision(js, Layout())
    for company in ("acme", "globex"):
        config = ConsumerConfig(
            durable_name=tenant_consumer(company, "default"),
            filter_subject=s.dispatch_subject(company, "default"),
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=30,
        )
        await js.add_consumer(s.DISPATCH_STREAM, config)
        await js.publish(s.dispatch_subject(company, "default"), json.dumps({"company": company}).encode())
    try:
        yield client
    finally:
        await client.nc.close()


async def test_an_executor_serves_only_its_own_company(
    isolated_nats: NatsServer, passwords: dict[str, str], store_conn: Client_
) -> None:
    acme = await _connect(isolated_nats, "exec-acme", passwords["EXEC_ACME"], inbox="_INBOX_acme")
    try:
        js = acme.nc.jetstream(timeout=5)
        own = await js.pull_subscribe_bind(tenant_consumer("acme", "default"), s.DISPATCH_STREAM)
        [msg] = await own.fetch(1, timeout=5)
        assert json.loads(msg.data) == {"company": "acme"}
        await msg.ack_sync()
        await js.publish(s.events_subject("acme", "job1"), b"{}")

        other = tenant_consumer("globex", "default")
        next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{s.DISPATCH_STREAM}.{other}"
        await acme.nc.publish(next_subject, b'{"batch":1}', reply="_INBOX_acme.x")
        assert await acme.violated(next_subject), acme.errors

        await acme.nc.subscribe("jetjobs.dispatch.globex.>")
        assert await acme.violated("jetjobs.dispatch.globex.>")

        await acme.nc.publish(s.events_subject("globex", "job2"), b"{}")
        await acme.nc.publish(s.dispatch_subject("globex", "default"), b"{}")
        assert await acme.violated(s.events_subject("globex", "job2"))
        assert await acme.violated(s.dispatch_subject("globex", "default"))

        create = f"$JS.API.CONSUMER.CREATE.{s.DISPATCH_STREAM}.spy.jetjobs.dispatch.globex.default"
        await acme.nc.publish(create, b"{}", reply="_INBOX_acme.y")
        assert await acme.violated(create)

        await acme.nc.subscribe("_INBOX.>")
        assert await acme.violated("_INBOX.>")
    finally:
        await acme.nc.close()

    sjs = store_conn.nc.jetstream(timeout=10)
    globex = await sjs.consumer_info(s.DISPATCH_STREAM, tenant_consumer("globex", "default"))
    assert globex.num_pending == 1 and globex.num_ack_pending == 0, "globex's job must be untouched"
    events = await sjs.stream_info(s.EVENTS_STREAM)
    assert events.state.messages == 1, "only acme's own event may have reached the stream"
    await _no_globex_events(sjs)


async def _no_globex_events(js: nats.js.JetStreamContext) -> None:
    msg = await js.get_last_msg(s.EVENTS_STREAM, s.events_subject("acme", "job1"))
    assert msg.subject == s.events_subject("acme", "job1")
