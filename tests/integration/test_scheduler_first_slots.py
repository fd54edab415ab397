"""Slots a template missed before it had any slot record, on real servers: created
while no scheduler ran, or created paused and resumed, its misfire policy
accounts for every slot since it was put on the schedule."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

import pytest

from contracts import api
from contracts.schedule import SlotReason, Trigger
from tests.integration.test_scheduler_policies import template, until_records
from tests.stack import make_scheduler, running_stack

pytestmark = pytest.mark.timeout(60)

SECOND = timedelta(seconds=1)


async def test_created_while_no_scheduler_ran_it_owes_its_missed_slots(
    nats_url: str, database_url: str
) -> None:
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        await stack.company()
        tid = await template(stack, "-c true", overlap="allow", misfire="catch_up", catch_up_limit=2)
        await asyncio.sleep(4)
        scheduler = make_scheduler(nats_url)
        await scheduler.start()
        try:
            found = await until_records(
                stack, tid, lambda rs: sum(r.trigger is Trigger.CATCH_UP and bool(r.job_id) for r in rs) == 2
            )
        finally:
            await scheduler.stop()
    slots = [r.slot for r in found]
    assert any(r.reason is SlotReason.MISFIRE for r in found), "slots beyond the catch-up limit not recorded"
    assert all(b - a == SECOND for a, b in itertools.pairwise(slots)), "a slot unaccounted for"


async def test_created_paused_its_resume_owes_the_paused_slots(nats_url: str, database_url: str) -> None:
    async with running_stack(nats_url, database_url) as stack:
        await stack.company()
        tid = await template(stack, "-c true", overlap="allow", misfire="fire_once", paused=True)
        await until_records(stack, tid, lambda rs: sum(r.reason is SlotReason.PAUSED for r in rs) >= 3)
        await stack.client.call("template.resume", api.TemplateRef(id=tid), api.RunTemplate)
        found = await until_records(stack, tid, lambda rs: any(r.trigger is Trigger.FIRE_ONCE for r in rs))
    (ran,) = [r for r in found if r.trigger is Trigger.FIRE_ONCE]
    assert ran.job_id, ran
