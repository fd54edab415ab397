"""Bus isolation: nats-server started with deploy/nats/isolation.conf; a company-A
executor can pull and publish only its own company's subjects, and the store and
a scheduler, each under its own user, schedule jobs and flows."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig

from bus import ApiClient, Bus, Layout
from bus.infra import ensure_consumer, provision
from bus.session import FORMING_PATIENCE
from contracts import api
from contracts import schedule as sc
from contracts import subjects as s
from contracts import tenants as t
from contracts.enums import ErrorKind, Status
from contracts.flows import FlowChecked, FlowSpec
from contracts.lifecycle import CancelReply
from contracts.tenants import tenant_consumer
from executor import ExecutorConfig, ExecutorService
from executor.config import ExecutorStartError
from jetjobs.embedded import NatsServer
from scheduler import SchedulerConfig, SchedulerService
from store import StoreConfig, StoreService
from store.credentials import new_key
from store.tokens import bootstrap_token
from tests.integration.tenants_stack import keyring
from tests.servers import shutdown
from tests.stack import Stack, eventually

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


async def test_a_bind_only_company_executor_runs_its_own_jobs_end_to_end(
    isolated_nats: NatsServer, passwords: dict[str, str], database_url: str
) -> None:
    """With only its company's permissions, an executor binds to the consumer an
    operator created, fetches its credentials (proving its actor with a token) and
    reports; another company's job stays untouched; without --bind-only it says
    what is wrong."""
    runner = await bootstrap_token(database_url, t.TokenCreate(actor="exec-acme"))
    server = f"{isolated_nats.host}:{isolated_nats.port}"
    store_url = f"nats://store:{passwords['STORE']}@{server}"
    acme_url = f"nats://exec-acme:{passwords['EXEC_ACME']}@{server}"
    ring = keyring(new_key())
    store = StoreService(StoreConfig(nats_url=store_url, database_url=database_url, keyring=ring), Layout())
    await store.start()
    operator = await Bus.attach(store_url, "operator")
    executor = ExecutorService(
        ExecutorConfig(
            nats_url=acme_url,
            company="acme",
            bind_only=True,
            actor="exec-acme",
            api_token=runner.token,
            slots=2,
        ),
        Layout(),
    )
    try:
        stack = Stack(store_url, database_url, ApiClient(operator.nc, actor="admin"), operator)
        with pytest.raises(ExecutorStartError, match="jetjobs company consumer acme"):
            await executor.start()
        await ensure_consumer(operator.js, s.DISPATCH_STREAM, Layout().company_consumer("acme", "default"))
        templates = {}
        script = '-c \'echo "$KEY"; sleep "$NAP"\''
        env = {"KEY": {"type": "password", "required": True}, "NAP": {"defval": "0"}}
        app = await stack.app(script, env=env)
        for company in ("acme", "globex"):
            await stack.company(company)
            await stack.client.call(
                "actor.grant", t.ActorGrant(company=company, actor="admin", role="admin"), t.ActorList
            )
            creds = t.CredentialSet(company=company, name="c", values={"KEY": f"key-of-{company}-5521"})
            await stack.client.call("credential.set", creds, t.CredentialInfo)
            template = await stack.template(name="t", app=str(app.app.id), company=company)
            assign = t.CredentialAssign(template_id=template.id, name="c")
            await stack.client.call("credential.assign", assign, t.Assigned)
            templates[company] = template.id
        grant = t.ActorGrant(company="acme", actor="exec-acme", role="executor")
        await stack.client.call("actor.grant", grant, t.ActorList)

        await executor.start()
        acme_job = await stack.final_job((await stack.run(templates["acme"])).job_id)
        assert acme_job.status is Status.PROCESSED, acme_job.reason
        assert acme_job.stdout == "********\n"
        sleeper = await stack.run(templates["acme"], NAP="60")
        await eventually(lambda: _started(stack, sleeper.job_id), what="the job to start")
        await stack.client.call("job.cancel", api.JobRef(id=sleeper.job_id), CancelReply)
        cancelled = await stack.final_job(sleeper.job_id)
        assert cancelled.kind is ErrorKind.CANCELLED, cancelled.reason
        globex_job = await stack.run(templates["globex"])
        await asyncio.sleep(1.0)
        assert (await stack.job(globex_job.job_id)).status is Status.DISPATCHED, "only acme's jobs run here"
    finally:
        await executor.stop()
        await operator.nc.close()
        await store.stop()

    provisioning = ExecutorService(ExecutorConfig(nats_url=acme_url, company="acme"), Layout())
    with pytest.raises(ExecutorStartError, match="--bind-only"):
        async with asyncio.timeout(FORMING_PATIENCE / 2):  # a denial is not waited out like a forming cluster
            await provisioning.start()


async def _started(stack: Stack, job_id: str) -> bool:
    return (await stack.job(job_id)).status is Status.STARTED


def _two_steps(app: str) -> FlowSpec:
    nodes = [{"name": "a", "app": app}, {"name": "b", "app": app, "depends": ["a"]}]
    return FlowSpec.model_validate({"name": "pair", "company": "acme", "nodes": nodes})


async def _fired(stack: Stack, template_id: int, done: Callable[[sc.SlotView], bool]) -> int:
    """How many recorded slots of the template (projected from the slot records) are `done`."""
    request = sc.ExplainRequest(id=template_id, next=0, last=100)
    explanation = await stack.client.call("template.explain", request, sc.Explanation)
    return sum(
        1 for view in explanation.slots if view.record.outcome is not sc.SlotOutcome.SKIPPED and done(view)
    )


async def test_a_scheduler_under_its_own_user_fires_records_slots_and_starts_flows(
    isolated_nats: NatsServer, passwords: dict[str, str], database_url: str
) -> None:
    """With only the SCHEDULER permissions, a scheduler fires a per-second template
    again and again, records every slot, and starts a flow template's runs, which
    the store (its own user) steps to the end on a bind-only executor."""
    server = f"{isolated_nats.host}:{isolated_nats.port}"
    store_url = f"nats://store:{passwords['STORE']}@{server}"
    store = StoreService(StoreConfig(nats_url=store_url, database_url=database_url), Layout())
    await store.start()
    operator = await Bus.attach(store_url, "operator")
    acme_url = f"nats://exec-acme:{passwords['EXEC_ACME']}@{server}"
    executor = ExecutorService(
        ExecutorConfig(nats_url=acme_url, company="acme", bind_only=True, slots=4), Layout()
    )
    scheduler_url = f"nats://scheduler:{passwords['SCHEDULER']}@{server}"
    scheduler = SchedulerService(SchedulerConfig(nats_url=scheduler_url), Layout())
    try:
        stack = Stack(store_url, database_url, ApiClient(operator.nc), operator)
        await stack.company("acme")
        await ensure_consumer(operator.js, s.DISPATCH_STREAM, Layout().company_consumer("acme", "default"))
        await executor.start()
        await scheduler.start()
        app = await stack.app("-c true")
        await stack.client.call("flow.save", _two_steps(app.app.uuid), FlowChecked)
        every_second = {"company": "acme", "interv": "c", "cron": "* * * * * *", "overlap": "allow"}
        tick = await stack.template(name="tick", app=app.app.uuid, **every_second)
        flowing = await stack.template(name="flowing", flow="pair", **every_second)

        async def ran() -> bool:
            jobs = await _fired(stack, tick.id, lambda view: view.job_status == "processed")
            flows = await _fired(stack, flowing.id, lambda view: view.flow_status == "finished")
            return jobs >= 4 and flows >= 2

        await eventually(ran, 30, "four fired slots of a template run and two of a flow template finished")
        assert scheduler.bus is not None and scheduler.bus.stats.denied == 0, "the scheduler was denied"
    finally:
        await scheduler.stop()
        await executor.stop()
        await operator.nc.close()
        await store.stop()
