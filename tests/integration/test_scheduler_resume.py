"""Resuming a paused `forbid` template just before one of its slots, on real servers:
the runs its misfire policy owes go first, one at a time, and the on-time slot is
skipped only while one of them is really active, saying so. The resume is timed
from the scheduler's own plan (the slot pending, or already prepared), not by
sleeping."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import pytest

from contracts import api
from contracts.records import JobRecord
from contracts.schedule import SlotOutcome, SlotReason, SlotRecord, Trigger
from scheduler import SchedulerService
from tests.integration.test_scheduler_policies import template, until_records
from tests.stack import Stack, make_scheduler, running_stack

pytestmark = pytest.mark.timeout(90)

SECOND = timedelta(seconds=1)
RUN = "-c 'sleep 0.5'"
"""Each run is active for half a slot or more, so overlaps show."""


async def until_timer(scheduler: SchedulerService, tid: int, pending: bool) -> datetime | None:
    """Wait (polling the plan every 2 ms) until the template's timer is pending (its
    slot returned) or taken to be fired (None)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while loop.time() < deadline:
        timer = scheduler.plan.timer(tid)
        if (timer is not None) is pending:
            return None if timer is None else timer.slot
        await asyncio.sleep(0.002)
    raise AssertionError(f"the template's timer was not {'pending' if pending else 'taken'} within 10 s")


async def resume_before_a_slot(
    stack: Stack, scheduler: SchedulerService, tid: int, prepared: bool
) -> datetime:
    """Resume the template just after its next slot became pending (`prepared` False)
    or just after that slot was prepared, half a second ahead (its timer taken, its
    message built); returns that slot."""
    await until_timer(scheduler, tid, pending=False)
    upcoming = await until_timer(scheduler, tid, pending=True)
    assert upcoming is not None
    if prepared:
        await until_timer(scheduler, tid, pending=False)
    await stack.client.call("template.resume", api.TemplateRef(id=tid), api.RunTemplate)
    return upcoming


async def final_jobs(stack: Stack, found: list[SlotRecord]) -> list[JobRecord]:
    return [await stack.final_job(r.job_id) for r in found if r.job_id]


@pytest.mark.parametrize(
    ("misfire", "owed", "prepared"),
    [("fire_once", 1, True), ("catch_up", 2, True), ("catch_up", 3, False)],
    ids=["fire_once-prepared", "catch_up-prepared", "catch_up-pending"],
)
async def test_owed_runs_go_first_one_at_a_time_and_the_slot_after_them_says_why(
    nats_url: str, database_url: str, misfire: str, owed: int, prepared: bool
) -> None:
    async with running_stack(nats_url, database_url) as stack:
        scheduler = stack.services[-1]
        assert isinstance(scheduler, SchedulerService)
        await stack.company()
        tid = await template(stack, RUN, overlap="forbid", misfire=misfire, catch_up_limit=owed)
        await until_records(stack, tid, lambda rs: len(rs) >= 1)
        await stack.client.call("template.pause", api.TemplateRef(id=tid), api.RunTemplate)
        await until_records(stack, tid, lambda rs: sum(r.reason is SlotReason.PAUSED for r in rs) > owed)
        upcoming = await resume_before_a_slot(stack, scheduler, tid, prepared)
        expected = [upcoming - n * SECOND for n in range(owed, 0, -1)]

        def settled(found: list[SlotRecord]) -> bool:
            """The owed runs and two slots after them are recorded, or long enough has passed."""
            last = max(r.slot for r in found)
            ran = all(r.job_id for r in found if r.slot in expected)
            return (ran and last >= upcoming + (owed + 2) * SECOND) or last >= upcoming + (
                3 * owed + 3
            ) * SECOND

        found = await until_records(stack, tid, settled, 30)
        jobs = await final_jobs(stack, found)
    by_slot = {r.slot: r for r in found}
    assert by_slot[upcoming].reason is not SlotReason.PAUSED, (
        "the resume came after the slot it was to precede"
    )
    made_up = [r for r in found if r.trigger is not Trigger.SCHEDULE]
    assert [r.slot for r in made_up] == expected, "the owed runs are the slots missed just before the resume"
    assert all(r.job_id and r.trigger.value == misfire for r in made_up)
    spans = sorted((j.begin, j.end) for j in jobs if j.begin and j.end)
    assert len(spans) == len(jobs)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), "two runs of a forbid template overlapped"
    began = {j.id: j.begin for j in jobs if j.begin}
    owed_jobs = [r.job_id or "" for r in made_up]
    assert sorted(owed_jobs, key=began.__getitem__) == owed_jobs, "the owed runs went out of slot order"
    ran_before: set[str] = set()
    for record in found:
        if record.outcome is SlotOutcome.SKIPPED and record.reason is SlotReason.OVERLAP:
            assert record.detail and any(job in record.detail for job in ran_before), record
        if record.job_id:
            ran_before.add(record.job_id)
    if prepared:
        first = made_up[0].job_id
        assert (
            by_slot[upcoming].reason is SlotReason.OVERLAP
            and first
            and first in (by_slot[upcoming].detail or "")
        )
    slots = [r.slot for r in found]
    assert all(b - a == SECOND for a, b in itertools.pairwise(slots)), "a slot unaccounted for"


async def test_after_an_outage_owed_runs_of_a_forbid_template_take_turns(
    nats_url: str, database_url: str
) -> None:
    """The same rule for the runs an outage left owed: one at a time, each slot
    recorded while it waits and fired once it ran."""
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        await stack.company()
        tid = await template(stack, RUN, overlap="forbid", misfire="catch_up", catch_up_limit=3)
        scheduler = make_scheduler(nats_url)
        await scheduler.start()
        await until_records(stack, tid, lambda rs: len(rs) >= 1)
        await scheduler.stop()
        stopped = datetime.now(UTC)
        await asyncio.sleep(5)
        restarted = make_scheduler(nats_url)
        await restarted.start()
        try:
            found = await until_records(
                stack,
                tid,
                lambda rs: (
                    sum(r.trigger is Trigger.CATCH_UP and r.job_id is not None for r in rs) == 3
                    or max(r.slot for r in rs) >= stopped + 15 * SECOND
                ),
                30,
            )
            jobs = await final_jobs(stack, found)
        finally:
            await restarted.stop()
    caught = [r for r in found if r.trigger is Trigger.CATCH_UP]
    assert len(caught) == 3 and all(r.job_id for r in caught), "an owed run did not run"
    spans = sorted((j.begin, j.end) for j in jobs if j.begin and j.end)
    assert len(spans) == len(jobs)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), "two runs of a forbid template overlapped"
