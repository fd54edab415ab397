"""A run's values of its template's secret fields (run-now `--env`, a flow's env for a
template node): sealed for that job alone before its message goes, carried by name,
served to that job over the template's own value, kept for a replay of its dead letter,
removed by retention with the job, re-encrypted by `rotate-key`, refused by a store
without a key."""

from __future__ import annotations

import asyncpg
import pytest

from contracts import tenants as t
from contracts.api import ApiFailure
from contracts.dispatch import adhoc_job_id
from contracts.enums import Status
from contracts.flows import FlowSpec
from contracts.lifecycle import DeadLetterList, DeadLetterQuery, DeadLetterRef, Replayed
from contracts.retention import DAY
from store import migrate
from store.credentials import Sealed, UndecryptableError, new_key
from store.retention import Horizons, prune
from store.rotation import Rotated, rotate_key
from tests.stack import Stack, eventually

from . import old_rows
from .tenants_stack import keyring, sealed_and_clear, tenant_stack
from .test_template_secrets import (
    ENV,
    SCRIPT,
    Dispatched,
    _printed,
    _ran,
    _rows,
    _stream_bytes,
    _template,
    run_flow_node,
)

RUN, TEMPLATE = "run-Pw-31415", "tmpl-Pw-27182"


async def _tables_holding(database_url: str, value: str) -> list[str]:
    """Every table with a row that holds `value` in clear (as text, or as bytes in hex)."""
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
        return [
            r["table_name"]
            for r in tables
            if await conn.fetchval(
                f'SELECT count(*) FROM "{r["table_name"]}" t WHERE strpos(t::text, $1) > 0 '
                "OR strpos(t::text, $2) > 0",
                value,
                value.encode().hex(),
            )
        ]
    finally:
        await conn.close()


async def _sealed_row(database_url: str) -> tuple[str, Sealed]:
    [row] = await _rows(database_url, "SELECT job_id, key_id, nonce, ciphertext FROM job_secret")
    return row["job_id"], Sealed(row["key_id"], bytes(row["nonce"]), bytes(row["ciphertext"]))


async def _fetched(stack: Stack, job_id: str, template_id: int) -> dict[str, str]:
    request = t.SecretsRequest(job_id=job_id, company="acme", template_id=template_id, names=["PASSWORD"])
    return (await stack.client.call("secrets.fetch", request, t.SecretsReply)).values


async def test_a_run_nows_secret_value_is_sealed_for_its_job_and_travels_by_name(
    nats_url: str, database_url: str
) -> None:
    ring = keyring(new_key())
    async with tenant_stack(nats_url, database_url, ring) as stack:
        template = await _template(stack, {"PASSWORD": TEMPLATE})
        dispatched = await Dispatched().listen(stack)
        queued = await stack.run(template.id, PASSWORD=RUN, USER_NAME="eve")
        job = await stack.final_job(queued.job_id)
        assert job.status is Status.PROCESSED, job.reason
        assert job.stdout == _printed(RUN), "the run's value wins over the template's own"

        [message] = dispatched.messages()
        assert message.secrets == ["PASSWORD"] and "PASSWORD" not in message.env
        assert message.env["USER_NAME"] == "eve"
        assert not any(RUN.encode() in raw for raw in dispatched.raw)
        assert RUN.encode() not in await _stream_bytes(stack.bus.js)
        assert await _tables_holding(database_url, RUN) == []

        job_id, sealed = await _sealed_row(database_url)
        assert job_id == queued.job_id and sealed.key_id == ring.primary
        assert ring.open_job_field(job_id, "PASSWORD", sealed) == RUN
        with pytest.raises(UndecryptableError, match="integrity check"):  # bound to its job
            ring.open_job_field(adhoc_job_id(), "PASSWORD", sealed)
        assert await _fetched(stack, adhoc_job_id(), template.id) == {"PASSWORD": TEMPLATE}, "its job's alone"

        assert await _ran(stack, template.id) == _printed(TEMPLATE), "a run without one gets the template's"
        assert len(await _rows(database_url, "SELECT 1 FROM job_secret")) == 1


async def test_a_replay_of_its_dead_letter_gets_the_runs_value(nats_url: str, database_url: str) -> None:
    async with tenant_stack(nats_url, database_url, keyring(new_key())) as stack:
        await stack.company("acme")
        failing_once = f"-c '{SCRIPT}; test \"$JETJOBS_ATTEMPT\" -ge 2' argv0 {{PASSWORD}}"
        app = await stack.app(failing_once, env=ENV)
        template = await stack.template(name="t", app=str(app.app.id), company="acme", interv="d", env={})
        queued = await stack.run(template.id, PASSWORD=RUN)
        failed = await stack.final_job(queued.job_id)
        assert failed.status is Status.ERROR and failed.stdout == _printed(RUN), failed.reason

        async def letters() -> DeadLetterList | None:
            found = await stack.client.call("dlq.list", DeadLetterQuery(company="acme"), DeadLetterList)
            return found if found.dead_letters else None

        [letter] = (await eventually(letters, 20.0, "the job's dead letter")).dead_letters
        assert await _tables_holding(database_url, RUN) == []
        await stack.client.call("dlq.replay", DeadLetterRef(id=letter.id), Replayed)

        async def replayed() -> str | None:
            job = await stack.job(queued.job_id)
            return job.stdout if job.status is Status.PROCESSED else None

        assert await eventually(replayed, 20.0, "the replayed job") == _printed(RUN)


async def test_rotate_key_reseals_a_runs_values(nats_url: str, database_url: str) -> None:
    old, new = new_key(), new_key()
    async with tenant_stack(nats_url, database_url, keyring(old)) as stack:
        template = await _template(stack, {"USER_NAME": "bob"})
        assert await _ran(stack, template.id, PASSWORD=RUN) == _printed(RUN)
    assert await rotate_key(database_url, keyring(new, old)) == Rotated(0, 0, 1)
    job_id, sealed = await _sealed_row(database_url)
    assert sealed.key_id == keyring(new).primary
    assert keyring(new).open_job_field(job_id, "PASSWORD", sealed) == RUN


async def test_a_store_without_a_key_refuses_a_runs_secret_value(nats_url: str, database_url: str) -> None:
    async with tenant_stack(nats_url, database_url, None) as stack:
        template = await _template(stack, {"USER_NAME": "bob"})
        dispatched = await Dispatched().listen(stack)
        with pytest.raises(
            ApiFailure,
            match=r"no secret key, so it cannot keep the value of secret field PASSWORD of a run: "
            r".*JETJOBS_SECRET_KEY_FILE",
        ) as refused:
            await stack.run(template.id, PASSWORD=RUN)
        assert refused.value.code == 503
        await stack.bus.nc.flush()
        assert dispatched.raw == [], "nothing was queued"
    assert await _tables_holding(database_url, RUN) == []


async def test_retention_removes_a_jobs_sealed_values_with_it(database_url: str) -> None:
    await migrate(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        await old_rows.job(conn, "old-job", 40)
        await old_rows.job(conn, "new-job", 2)
        await old_rows.job(conn, "old-running", 40, status="started", final=False)
        for job_id, days in [
            ("old-job", 40),
            ("new-job", 2),
            ("old-running", 40),
            ("old-never-recorded", 40),
            ("being-queued", 0),
        ]:
            await conn.execute(
                "INSERT INTO job_secret (job_id, name, company, template_id, key_id, nonce, ciphertext, "
                "created_at) VALUES ($1, 'PASSWORD', 'acme', 1, 'k', '\\x00', '\\x00', "
                "now() - make_interval(secs => $2))",
                job_id,
                days * 86400,
            )
        await prune(conn, Horizons.ago(30 * DAY, None), 10, None, lambda _: None)
        left = {r["job_id"] for r in await conn.fetch("SELECT job_id FROM job_secret")}
    finally:
        await conn.close()
    assert left == {"new-job", "old-running", "being-queued"}


async def test_a_flow_template_nodes_secret_value_is_sealed_for_its_job(
    nats_url: str, database_url: str
) -> None:
    ring = keyring(new_key())
    async with tenant_stack(nats_url, database_url, ring) as stack:
        template = await _template(stack, {"PASSWORD": TEMPLATE})
        node = {"name": "a", "template": template.id}
        spec = FlowSpec.model_validate({"name": "secretive", "company": "acme", "nodes": [node]})
        env = {"PASSWORD": RUN, "USER_NAME": "eve"}
        sealed, clear = await sealed_and_clear(database_url, spec, env, ring)
        sealed_id = sealed.job_id
        assert sealed.secrets == ["PASSWORD"] and sealed.env["USER_NAME"] == "eve"
        assert RUN not in sealed.model_dump_json()
        assert await _fetched(stack, sealed_id, template.id) == {"PASSWORD": RUN}
        assert clear.env["PASSWORD"] == RUN and clear.masked == ["PASSWORD"], "without a keyring, as before"
        job_id, value = await _sealed_row(database_url)
        assert job_id == sealed_id and ring.open_job_field(job_id, "PASSWORD", value) == RUN


async def test_a_flow_runs_template_node_gets_its_secret_value_by_name(
    nats_url: str, database_url: str
) -> None:
    async with tenant_stack(nats_url, database_url, keyring(new_key())) as stack:
        template = await _template(stack, {"PASSWORD": TEMPLATE})
        dispatched = await Dispatched().listen(stack)
        node = {"name": "a", "template": template.id, "env": {"PASSWORD": RUN}}
        job, message = await run_flow_node(stack, dispatched, node)
        assert job.status is Status.PROCESSED and job.stdout == _printed(RUN), job.reason
        assert message.secrets == ["PASSWORD"] and "PASSWORD" not in message.env
        assert RUN not in message.model_dump_json()
