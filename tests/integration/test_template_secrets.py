"""A template's values of its application's secret fields: encrypted in Postgres (bound
to the template), carried by name only on the templates board and in job messages,
fetched just in time by the executor, re-encrypted by `rotate-key`, refused by a store
without a key, and sealed at start when saved in clear before."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import asyncpg
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from structlog.testing import capture_logs

from contracts import api
from contracts import tenants as t
from contracts.api import ApiFailure
from contracts.enums import Status
from contracts.flows import FlowRef, FlowRun, FlowRunRequest, FlowSpec
from contracts.messages import JobMessage
from contracts.models import ActiveTemplate, RunTemplate
from contracts.records import JobRecord
from contracts.subjects import DISPATCH_ALL, TEMPLATES_BUCKET, template_key
from store.credentials import Sealed, new_key
from store.db import open_pool
from store.rotation import Rotated, rotate_key
from store.template_secrets import seal_at_start
from tests.stack import Stack, eventually

from .tenants_stack import keyring, tenant_stack

TEMPLATE, CREDENTIAL, OVERRIDE, LEGACY = "tmpl-Pw-80421", "cred-Pw-13370", "over-Pw-55190", "old-Pw-62718"
SCRIPT = (
    'printf "pw=%s arg=%s sum=%s\\n" "$PASSWORD" "$1" "$(printf %s "$PASSWORD" | sha256sum | cut -c1-16)"'
)
"""Prints the password (masked) and a digest of it, which proves which value the job got."""
ENV = {
    "PASSWORD": {"type": "password", "required": True},
    "USER_NAME": {"type": "string", "defval": "demo"},
}


def _printed(value: str) -> str:
    return f"pw=******** arg=******** sum={hashlib.sha256(value.encode()).hexdigest()[:16]}\n"


async def _template(stack: Stack, env: dict[str, str], name: str = "t") -> RunTemplate:
    if name == "t":
        await stack.company("acme")
    app = await stack.app(f"-c '{SCRIPT}' argv0 {{PASSWORD}}", env=ENV)
    return await stack.template(name=name, app=str(app.app.id), company="acme", interv="d", env=env)


async def run_flow_node(
    stack: Stack, dispatched: Dispatched, node: dict[str, Any]
) -> tuple[JobRecord, JobMessage]:
    """Run a one-node flow of company acme; the node's job once it ended, and its message."""
    spec = FlowSpec.model_validate({"name": "secretive", "company": "acme", "nodes": [node]})
    run = await stack.client.call("flow.run", FlowRunRequest(spec=spec, launched_by="test"), FlowRun)

    async def node_job() -> str | None:
        found = await stack.client.call("flow.get", FlowRef(id=run.id), FlowRun)
        return found.nodes[0].job_id

    job = await stack.final_job(await eventually(node_job, 20.0, "the node's job"))
    [message] = dispatched.messages()
    return job, message


async def _ran(stack: Stack, template_id: int, **env: str) -> str:
    job = await stack.final_job((await stack.run(template_id, **env)).job_id)
    assert job.status is Status.PROCESSED, job.reason
    assert job.stdout is not None
    return job.stdout


async def _stream_bytes(js: JetStreamContext) -> bytes:
    """Every message of every stream on the server (KV buckets included)."""
    found = bytearray()
    for info in await js.streams_info():
        for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
            try:
                found += (await js.get_msg(info.config.name, seq)).data or b""
            except NotFoundError:
                continue
    return bytes(found)


class Dispatched:
    """Every job message published while it listens, as it went on the wire (the dispatch
    stream keeps a message only until its consumers have taken it)."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []

    async def listen(self, stack: Stack) -> Dispatched:
        async def take(msg: Msg) -> None:
            self.raw.append(msg.data)

        await stack.bus.nc.subscribe(DISPATCH_ALL, cb=take)
        await stack.bus.nc.flush()
        return self

    def messages(self) -> list[JobMessage]:
        return [JobMessage.model_validate_json(data) for data in self.raw]


async def _rows(url: str, sql: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def _env_entry(stack: Stack, template_id: int, name: str) -> tuple[str | None, str]:
    env = await stack.client.call("template.env", api.TemplateRef(id=template_id), t.TemplateEnv)
    entry = next(e for e in env.entries if e.name == name)
    return entry.value, entry.source


async def test_a_template_secret_is_sealed_travels_by_name_and_reaches_its_job(
    nats_url: str, database_url: str
) -> None:
    ring = keyring(new_key())
    async with tenant_stack(nats_url, database_url, ring) as stack:
        template = await _template(stack, {"PASSWORD": TEMPLATE, "USER_NAME": "bob"})
        assert template.env == {"PASSWORD": "********", "USER_NAME": "bob"}
        assert await _env_entry(stack, template.id, "PASSWORD") == ("********", "template")
        [row] = await _rows(
            database_url, "SELECT env::text AS env FROM runtemplate WHERE id = $1", template.id
        )
        assert json.loads(row["env"]) == {"USER_NAME": "bob"}
        [sealed] = await _rows(
            database_url, "SELECT * FROM template_secret WHERE template_id = $1", template.id
        )
        assert sealed["name"] == "PASSWORD" and sealed["key_id"] == ring.primary
        assert TEMPLATE.encode() not in bytes(sealed["ciphertext"])

        kv = await stack.bus.js.key_value(TEMPLATES_BUCKET)
        entry = await kv.get(template_key(template.id))
        board = ActiveTemplate.model_validate_json(entry.value or b"")
        assert board.secrets == ["PASSWORD"] and "PASSWORD" not in board.env

        dispatched = await Dispatched().listen(stack)
        assert await _ran(stack, template.id) == _printed(TEMPLATE)
        [message] = dispatched.messages()
        assert message.secrets == ["PASSWORD"] and "PASSWORD" not in message.env
        assert not any(TEMPLATE.encode() in raw for raw in dispatched.raw)
        assert TEMPLATE.encode() not in await _stream_bytes(stack.bus.js)

        values = {"PASSWORD": CREDENTIAL}
        await stack.client.call(
            "credential.set", t.CredentialSet(company="acme", name="abra", values=values), t.CredentialInfo
        )
        assign = t.CredentialAssign(template_id=template.id, name="abra")
        await stack.client.call("credential.assign", assign, t.Assigned)
        assert await _ran(stack, template.id) == _printed(TEMPLATE), "the template's value wins"
        assert await _ran(stack, template.id, PASSWORD=OVERRIDE) == _printed(OVERRIDE), "a run's wins"


async def test_an_update_replaces_secrets_as_it_does_the_env(nats_url: str, database_url: str) -> None:
    async with tenant_stack(nats_url, database_url, keyring(new_key())) as stack:
        template = await _template(stack, {"PASSWORD": TEMPLATE})

        async def update(**change: Any) -> RunTemplate:
            request = api.TemplateUpdate(id=template.id, **change)
            return await stack.client.call("template.update", request, RunTemplate)

        assert (await update(set_env={"USER_NAME": "eve"})).env == {
            "PASSWORD": "********",
            "USER_NAME": "eve",
        }
        assert await _ran(stack, template.id) == _printed(TEMPLATE), "an update of another field keeps it"
        await update(set_env={"PASSWORD": OVERRIDE})
        assert await _ran(stack, template.id) == _printed(OVERRIDE), "a value sent again replaces it"
        assert OVERRIDE not in str(await _rows(database_url, "SELECT env::text FROM runtemplate"))
        assert [r["name"] for r in await _rows(database_url, "SELECT name FROM template_secret")] == [
            "PASSWORD"
        ]
        assert (await update(unset_env=["PASSWORD"])).env == {"USER_NAME": "eve"}
        assert await _env_entry(stack, template.id, "PASSWORD") == (None, "unset")
        await update(changes={"env": {"PASSWORD": TEMPLATE}})
        assert (await update(changes={"env": {"USER_NAME": "x"}})).env == {"USER_NAME": "x"}
        assert not await _rows(database_url, "SELECT 1 FROM template_secret")
        assert TEMPLATE not in str(await _rows(database_url, "SELECT env::text FROM runtemplate"))


async def test_a_flow_running_the_template_fetches_its_secret(nats_url: str, database_url: str) -> None:
    async with tenant_stack(nats_url, database_url, keyring(new_key())) as stack:
        template = await _template(stack, {"PASSWORD": TEMPLATE})
        dispatched = await Dispatched().listen(stack)
        job, message = await run_flow_node(stack, dispatched, {"name": "a", "template": template.id})
        assert job.status is Status.PROCESSED and job.stdout == _printed(TEMPLATE), job.reason
        assert message.secrets == ["PASSWORD"] and "PASSWORD" not in message.env
        assert not any(TEMPLATE.encode() in raw for raw in dispatched.raw)
        assert TEMPLATE.encode() not in await _stream_bytes(stack.bus.js)


async def test_rotate_key_reseals_template_secrets_bound_to_their_template(
    nats_url: str, database_url: str
) -> None:
    old, new = new_key(), new_key()
    async with tenant_stack(nats_url, database_url, keyring(old)) as stack:
        template = await _template(stack, {"PASSWORD": TEMPLATE})
        other = await _template(stack, {"USER_NAME": "x"}, name="other")
    assert await rotate_key(database_url, keyring(new, old)) == Rotated(0, 1)
    [row] = await _rows(database_url, "SELECT key_id FROM template_secret")
    assert row["key_id"] == keyring(new).primary
    await _rows(  # a sealed value copied to another template does not open there
        database_url,
        "INSERT INTO template_secret (template_id, name, key_id, nonce, ciphertext) "
        "SELECT $1, name, key_id, nonce, ciphertext FROM template_secret WHERE template_id = $2",
        other.id,
        template.id,
    )
    async with tenant_stack(nats_url, database_url, keyring(new)) as stack:
        assert await _ran(stack, template.id) == _printed(TEMPLATE)
        job = await stack.final_job((await stack.run(other.id)).job_id)
        assert job.status is Status.ERROR and "integrity check" in (job.reason or ""), job.reason


async def test_a_store_without_a_key_refuses_a_secret_value(nats_url: str, database_url: str) -> None:
    async with tenant_stack(nats_url, database_url, None) as stack:
        with pytest.raises(
            ApiFailure, match=r"no secret key.*PASSWORD.*jetjobs credentials new-key"
        ) as refused:
            await _template(stack, {"PASSWORD": TEMPLATE})
        assert refused.value.code == 503
        template = await stack.template(
            name="t",
            app=str((await stack.app("-c true", env=ENV)).app.id),
            company="acme",
            env={"PASSWORD": ""},
        )
        update = api.TemplateUpdate(id=template.id, set_env={"PASSWORD": TEMPLATE})
        with pytest.raises(ApiFailure, match=r"no secret key.*JETJOBS_SECRET_KEY_FILE"):
            await stack.client.call("template.update", update, RunTemplate)
    assert TEMPLATE not in str(await _rows(database_url, "SELECT env::text FROM runtemplate"))


async def test_values_saved_in_clear_before_are_sealed_at_start(nats_url: str, database_url: str) -> None:
    async with tenant_stack(nats_url, database_url, None) as stack:
        template = await _template(stack, {"USER_NAME": "bob"})
    legacy = json.dumps({"USER_NAME": "bob", "PASSWORD": LEGACY})
    await _rows(database_url, "UPDATE runtemplate SET env = $2::jsonb WHERE id = $1", template.id, legacy)
    with capture_logs() as logs:
        async with tenant_stack(nats_url, database_url, None) as stack:
            assert await _ran(stack, template.id) == _printed(LEGACY), "it keeps running without a key"
    [warned] = [e for e in logs if e["event"] == "store.template_secrets_in_clear"]
    assert warned["templates"] == 1 and "JETJOBS_SECRET_KEY_FILE" in warned["fix"]

    ring = keyring(new_key())
    with capture_logs() as logs:
        async with tenant_stack(nats_url, database_url, ring) as stack:
            dispatched = await Dispatched().listen(stack)
            assert await _ran(stack, template.id) == _printed(LEGACY)
            [message] = dispatched.messages()
            assert message.secrets == ["PASSWORD"] and "PASSWORD" not in message.env
    assert [e["templates"] for e in logs if e["event"] == "store.template_secrets_sealed"] == [1]
    [row] = await _rows(database_url, "SELECT env::text AS env FROM runtemplate WHERE id = $1", template.id)
    assert json.loads(row["env"]) == {"USER_NAME": "bob"}
    [sealed] = await _rows(database_url, "SELECT key_id, nonce, ciphertext FROM template_secret")
    value = Sealed(sealed["key_id"], bytes(sealed["nonce"]), bytes(sealed["ciphertext"]))
    assert ring.open_field(template.id, "PASSWORD", value) == LEGACY


async def test_two_stores_starting_together_seal_once(nats_url: str, database_url: str) -> None:
    async with tenant_stack(nats_url, database_url, None) as stack:
        template = await _template(stack, {"USER_NAME": "bob"})
    legacy = json.dumps({"PASSWORD": LEGACY})
    await _rows(database_url, "UPDATE runtemplate SET env = $2::jsonb WHERE id = $1", template.id, legacy)
    ring = keyring(new_key())
    pools = [await open_pool(database_url, 2), await open_pool(database_url, 2)]
    try:
        counts = await asyncio.gather(*(seal_at_start(pool, ring) for pool in pools))
    finally:
        for pool in pools:
            await pool.close()
    assert sorted(counts) == [0, 1]
    [sealed] = await _rows(database_url, "SELECT key_id, nonce, ciphertext FROM template_secret")
    value = Sealed(sealed["key_id"], bytes(sealed["nonce"]), bytes(sealed["ciphertext"]))
    assert ring.open_field(template.id, "PASSWORD", value) == LEGACY
