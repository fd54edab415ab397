"""A short cut between the scheduler and NATS, for real (a TCP proxy drops its
connection), while a `forbid` template's run ends: the final event published
during the cut never reaches the scheduler's subscription, yet the template's
next slots run, instead of being skipped as overlapping a run that is over
until that run's horizon (hours) passes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bus.slots import last_event
from contracts.messages import JobEvent
from contracts.schedule import SlotOutcome
from tests.integration.test_scheduler_policies import template, until_records
from tests.stack import eventually, make_scheduler, running_stack
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.timeout(90)

EVERY = timedelta(seconds=5)


async def test_a_run_ending_while_the_scheduler_is_cut_off_does_not_block_its_template(
    nats_url: str, database_url: str
) -> None:
    async with running_stack(nats_url, database_url, scheduler=False) as stack, TcpProxy(nats_url) as proxy:
        await stack.company()
        tid = await template(stack, "-c 'sleep 1'", overlap="forbid", cron="*/5 * * * * *")
        scheduler = make_scheduler(proxy.url)
        await scheduler.start()
        try:
            fired = await until_records(stack, tid, lambda rs: any(r.job_id for r in rs), 20)
            first = next(r for r in fired if r.job_id)
            job_id = first.job_id or ""

            async def event(final: bool) -> JobEvent | None:
                found = await last_event(stack.bus.js, "acme", job_id)
                return None if found is None or (final and not found.final) else found

            await eventually(lambda: event(final=False), 10, f"job {job_id} to start")
            proxy.cut()
            try:
                await eventually(lambda: event(final=True), 10, f"job {job_id} to end")
            finally:
                await proxy.mend()
            after = await until_records(
                stack, tid, lambda rs: any(r.slot >= first.slot + 2 * EVERY for r in rs), 30
            )
        finally:
            await scheduler.stop()
    later = [r for r in after if r.slot > first.slot]
    assert later, "no slot after the cut was recorded"
    assert all(r.outcome is not SlotOutcome.SKIPPED for r in later), [
        (r.slot, r.outcome.value, r.detail) for r in later
    ]
