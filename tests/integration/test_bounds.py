"""Values past what dates, timers and Postgres can hold, on real servers: refused
by the API, dead-lettered by the executor, skipped by the scheduler, and every
service goes on."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from bus import TemplateBoard
from contracts import api
from contracts import subjects as s
from contracts.api import ApiFailure
from contracts.models import ActiveTemplate, RunTemplate
from tests.stack import Stack, eventually, make_scheduler, running_stack

pytestmark = pytest.mark.timeout(90)

EVERY_SECOND = "* * * * * *"
DISPATCH = s.dispatch_subject("acme", "default")


@pytest.fixture
async def stack(nats_url: str, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(nats_url, database_url, scheduler=False) as running:
        await running.company()
        yield running


async def every_second(stack: Stack, name: str, app: str) -> RunTemplate:
    return await stack.template(name=name, app=app, company="acme", interv="c", cron=EVERY_SECOND)


async def refusal(stack: Stack, op: str, request: dict[str, Any]) -> ApiFailure:
    """The store's answer to JSON the client models would refuse."""
    msg = await stack.bus.nc.request(s.api_subject(op), json.dumps(request).encode(), timeout=10)
    headers = msg.headers or {}
    assert "Nats-Service-Error-Code" in headers, f"{op} accepted {request}"
    return ApiFailure(int(headers["Nats-Service-Error-Code"]), headers["Nats-Service-Error"])


async def rows(stack: Stack, sql: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(stack.database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def test_the_store_refuses_timeouts_out_of_bounds_with_a_400(stack: Stack) -> None:
    app = await stack.app("-c true")
    spec = {"name": "huge", "app": str(app.app.id), "company": "acme", "interv": "c", "cron": EVERY_SECOND}
    huge = await refusal(stack, "template.create", spec | {"timeouts": {"timeout": 1e14}})
    assert (huge.code, huge.message) == (
        400,
        "template.create: timeouts: timeout 100000000000000 s is too long: "
        "give at most 315360000 s (ten years)",
    )
    made = await every_second(stack, "fine", str(app.app.id))
    hot = await refusal(stack, "template.run", {"id": made.id, "timeouts": {"timeout_ack": 0.0001}})
    assert hot.code == 400 and "timeout_ack 0.0001 s is too short: give at least 1 s" in hot.message
    endless = await refusal(stack, "template.run", {"id": made.id, "timeouts": {"timeout": 1e400}})
    assert endless.code == 400 and "timeout inf s is too long" in endless.message


async def test_job_messages_out_of_range_are_dead_lettered_and_the_executor_goes_on(stack: Stack) -> None:
    now = datetime.now(UTC).isoformat()
    good: dict[str, Any] = {"company": "acme", "argv": ["true"], "scheduled_at": now, "dispatched_at": now}
    good |= {"timeout": 600, "timeout_ack": 30, "timeout_result": 60}
    bad = {
        "bounds-timeout": good | {"timeout": 1e400},
        "bounds-year": good | {"dispatched_at": "9999-12-31T23:00:00+00:00", "timeout": 3600},
        "bounds-attempt": good | {"attempt": 3_000_000_000},
    }
    for job_id, fields in bad.items():
        payload = json.dumps({"job_id": job_id, **fields}).replace('"timeout": Infinity', '"timeout": 1e400')
        await stack.bus.js.publish(DISPATCH, payload.encode(), headers={"Nats-Msg-Id": job_id})

    async def letters() -> dict[str, str] | None:
        found = await rows(stack, "SELECT job_id, reason FROM dead_letter WHERE job_id = ANY($1)", list(bad))
        return {r["job_id"]: r["reason"] for r in found} if len(found) == len(bad) else None

    reasons = await eventually(letters, 20, "every out-of-range message to be dead-lettered")
    assert "timeout: Input should be less than or equal to 315360000" in reasons["bounds-timeout"]
    assert "Input should be less than or equal to 9000-12-31T23:59:59.999999Z" in reasons["bounds-year"]
    assert "attempt: Input should be less than or equal to 1000000000" in reasons["bounds-attempt"]
    await stack.bus.js.publish(DISPATCH, json.dumps({"job_id": "bounds-fine", **good}).encode())

    async def done() -> list[Any]:
        return await rows(stack, "SELECT status::text FROM job WHERE id = 'bounds-fine' AND final")

    assert [r["status"] for r in await eventually(done, 20, "a valid job to run")] == ["processed"]


async def test_a_scheduler_skips_a_template_stored_before_the_bounds_and_schedules_the_others(
    stack: Stack,
) -> None:
    app = str((await stack.app("-c true")).app.id)
    good, old = await every_second(stack, "good", app), await every_second(stack, "old", app)
    # As saved before the bounds: the row keeps it, and the store lists it all the same.
    await rows(stack, "UPDATE runtemplate SET timeout = 1e14 WHERE id = $1", old.id)
    listed = await stack.client.call("template.list", api.CompanyFilter(company="acme"), api.TemplateList)
    assert {t.name: t.timeouts.timeout for t in listed.templates}["old"] == 1e14
    with pytest.raises(ApiFailure) as refused:
        await stack.run(old.id)
    assert refused.value.code == 400 and "change it to a value that is allowed now" in refused.value.message
    stored = next(t for t in listed.templates if t.id == old.id)
    posted = await on_board(stack, old.id)  # the store's view of it, as its resync would put it
    board = await TemplateBoard.open(stack.bus.js)
    await board.put(posted.model_copy(update={"timeouts": stored.timeouts, "revision": "stored"}))

    scheduler = make_scheduler(stack.nats_url)
    with capture_logs() as logs:
        await scheduler.start()
        stack.services.append(scheduler)
        await fired(stack, good.id)
        later = await every_second(stack, "later", app)  # a change after the bad one is applied
        await fired(stack, later.id)
    assert scheduler.plan.ids() == {good.id, later.id}
    skipped = [e for e in logs if e["event"] == "schedule.invalid_template"]
    assert skipped and skipped[0]["template_id"] == old.id and "too long" in skipped[0]["reason"]


async def on_board(stack: Stack, template_id: int) -> ActiveTemplate:
    """The store's view of a template, once it is on the templates KV."""

    async def posted() -> ActiveTemplate | None:
        kv = await stack.bus.js.key_value(s.TEMPLATES_BUCKET)
        entry = await kv.get(s.template_key(template_id))
        return None if entry.value is None else ActiveTemplate.model_validate_json(entry.value)

    return await eventually(posted, 10, f"template {template_id} on the board")


async def fired(stack: Stack, template_id: int) -> None:
    """Until a job of the template is recorded."""

    async def recorded() -> bool:
        return bool(await stack.jobs(template_id=template_id))

    await eventually(recorded, 20, f"a job of template {template_id}")
