"""A template made inactive (active=false) owes nothing for that time, even when
the scheduler restarted meanwhile; and slots owed after an outage are stamped
with the time they are acted on, not the earliest of them: a skipped one is
never recorded before its own slot, and a run is dispatched now (else an
executor refuses it once the outage outlasted the template's timeout)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from contracts import api
from contracts.schedule import SlotReason, Trigger
from tests.integration.test_scheduler_policies import records, template, until_records
from tests.stack import Stack, eventually, make_scheduler, running_stack

pytestmark = pytest.mark.timeout(60)

DOWN = 4.0
"""Seconds the scheduler is down: a few per-second slots beyond the 1 s misfire grace."""


async def made_inactive_under_a_scheduler(stack: Stack, nats_url: str, template_id: int) -> None:
    """Let a scheduler fire the template once, make it inactive, and stop the
    scheduler once the template has left its plan."""
    first = make_scheduler(nats_url)
    await first.start()
    try:
        await until_records(stack, template_id, lambda rs: len(rs) >= 1)
        changes = api.TemplateUpdate(id=template_id, changes={"active": False})
        await stack.client.call("template.update", changes, api.RunTemplate)

        async def dropped() -> bool:
            return first.plan.entry(template_id) is None

        await eventually(dropped, 10, "the inactive template to leave the plan")
    finally:
        await first.stop()


async def test_reactivated_after_a_restart_owes_nothing_for_its_inactive_time(
    nats_url: str, database_url: str
) -> None:
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        await stack.company()
        common = {"overlap": "allow", "cron": "* * * * * *"}
        inactive = await template(stack, "-c true", misfire="catch_up", catch_up_limit=3, **common)
        steady = await template(stack, "-c 'true 1'", misfire="skip", **common)
        short = await template(stack, "-c 'true 2'", misfire="fire_once", timeouts={"timeout": 2}, **common)
        await made_inactive_under_a_scheduler(stack, nats_url, inactive)
        stopped = datetime.now(UTC)
        await asyncio.sleep(DOWN)
        restarted = make_scheduler(nats_url)
        await restarted.start()
        try:

            async def leading() -> bool:
                return restarted.leading

            await eventually(leading, 10, "the restarted scheduler to lead")
            reactivated = datetime.now(UTC)
            changes = api.TemplateUpdate(id=inactive, changes={"active": True})
            await stack.client.call("template.update", changes, api.RunTemplate)
            await until_records(stack, inactive, lambda rs: any(r.slot > reactivated for r in rs))
            down = await until_records(
                stack, steady, lambda rs: sum(r.reason is SlotReason.MISFIRE for r in rs) >= 2
            )
            owed = await until_records(
                stack, short, lambda rs: any(r.trigger is Trigger.FIRE_ONCE for r in rs)
            )
            job_id = next(r.job_id for r in owed if r.trigger is Trigger.FIRE_ONCE)
            assert job_id is not None
            ran = await stack.final_job(job_id, timeout=10)
            await asyncio.sleep(1)
            after = await records(stack, inactive)
        finally:
            await restarted.stop()
    bogus = [r for r in after if r.trigger is Trigger.CATCH_UP or r.reason is SlotReason.MISFIRE]
    assert bogus == [], "slots of the inactive time were owed on re-activation"
    grace = timedelta(seconds=1)
    inside = [r for r in after if stopped < r.slot <= reactivated - grace]
    assert inside == [], "slots of the inactive time were recorded"
    misfired = [r for r in down if r.reason is SlotReason.MISFIRE]
    assert all(r.recorded_at >= r.slot for r in misfired), [(r.slot, r.recorded_at) for r in misfired]
    assert ran.status.value == "processed", (ran.kind, ran.dispatched_at)


async def test_reactivated_while_no_scheduler_runs_owes_only_what_follows_its_reactivation(
    nats_url: str, database_url: str
) -> None:
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        await stack.company()
        cron = {"overlap": "allow", "cron": "* * * * * *", "misfire": "catch_up", "catch_up_limit": 50}
        inactive = await template(stack, "-c true", **cron)
        await made_inactive_under_a_scheduler(stack, nats_url, inactive)
        await asyncio.sleep(DOWN)
        reactivated = datetime.now(UTC)
        changes = api.TemplateUpdate(id=inactive, changes={"active": True})
        await stack.client.call("template.update", changes, api.RunTemplate)
        await asyncio.sleep(DOWN)
        restarted = make_scheduler(nats_url)
        await restarted.start()
        try:
            after = await until_records(
                stack, inactive, lambda rs: any(r.trigger is Trigger.CATCH_UP for r in rs)
            )
            await asyncio.sleep(1)
            after = await records(stack, inactive)
        finally:
            await restarted.stop()
    caught_up = sorted(r.slot for r in after if r.trigger is Trigger.CATCH_UP)
    assert caught_up and caught_up[0] > reactivated, (
        f"slots from before the re-activation at {reactivated} were owed: {caught_up}"
    )
    assert len(caught_up) >= DOWN - 2, "the slots after the re-activation are owed"
