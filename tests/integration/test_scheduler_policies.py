"""Overlap, misfire, pause, backfill and live changes, with real jobs on real
servers; what happened to each slot is read back from Postgres (`template.explain`)."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts import api
from contracts import schedule as sc
from contracts.models import RunTemplate
from contracts.schedule import SlotOutcome, SlotReason, SlotRecord, Trigger
from tests.stack import Stack, eventually, make_scheduler, running_stack

pytestmark = pytest.mark.timeout(60)


async def explain(stack: Stack, template_id: int) -> sc.Explanation:
    request = sc.ExplainRequest(id=template_id, next=3, last=500)
    return await stack.client.call("template.explain", request, sc.Explanation)


async def records(stack: Stack, template_id: int) -> list[SlotRecord]:
    return sorted((v.record for v in (await explain(stack, template_id)).slots), key=lambda r: r.slot)


async def template(stack: Stack, cmd: str, **fields: Any) -> int:
    app = await stack.app(cmd)
    values = {"name": f"t-{cmd[:12]}-{len(fields)}", "app": app.app.uuid, "company": "acme", "interv": "c"}
    values |= {"cron": "* * * * * *"} | fields
    return (await stack.template(**values)).id


async def until_records(
    stack: Stack, template_id: int, check: Any, timeout: float = 15.0
) -> list[SlotRecord]:
    async def probe() -> list[SlotRecord] | None:
        found = await records(stack, template_id)
        return found if check(found) else None

    return await eventually(probe, timeout, f"slot records of template {template_id}")


async def test_forbid_skips_slots_while_the_previous_run_is_active(nats_url: str, database_url: str) -> None:
    async with running_stack(nats_url, database_url) as stack:
        await stack.company()
        tid = await template(stack, "-c 'sleep 2.5'", overlap="forbid")
        found = await until_records(
            stack, tid, lambda rs: sum(r.outcome is not SlotOutcome.SKIPPED for r in rs) >= 2, 20
        )
        jobs = [await stack.job(r.job_id) for r in found if r.job_id]
    skipped = [r for r in found if r.outcome is SlotOutcome.SKIPPED]
    assert skipped and all(r.reason is SlotReason.OVERLAP for r in skipped)
    assert all(r.detail and "still active" in r.detail for r in skipped)
    spans = sorted((j.begin, j.end) for j in jobs if j.begin and j.end)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), "two runs overlapped"


async def test_a_forbid_template_moved_while_its_job_runs_fires_after_a_takeover(
    nats_url: str, database_url: str
) -> None:
    """A new leader looks up a recorded run's end under the company the job ran in, not
    the template's company now: it waited for the run's horizon (hours) after a move."""
    async with running_stack(nats_url, database_url) as stack:
        await stack.company()
        await stack.company("beta")
        tid = await template(stack, "-c 'sleep 6'", overlap="forbid")
        recorded = await until_records(stack, tid, lambda rs: any(r.job_id for r in rs), 20)
        running = next(r for r in recorded if r.job_id)
        assert running.job_id is not None
        move = api.TemplateUpdate(id=tid, changes={"company": "beta"})
        await stack.client.call("template.update", move, RunTemplate)
        await stack.services[-1].stop()  # the leader, which heard the run start
        await stack.final_job(running.job_id, timeout=20)
        takeover = make_scheduler(nats_url)
        await takeover.start()
        try:
            fired = await until_records(stack, tid, lambda rs: any(r.job_id for r in rs), 15)
        finally:
            await takeover.stop()
    assert all(r.company == "beta" for r in fired)


async def test_allow_starts_runs_beside_each_other(nats_url: str, database_url: str) -> None:
    async with running_stack(nats_url, database_url) as stack:
        await stack.company()
        tid = await template(stack, "-c 'sleep 2.5'", overlap="allow")
        found = await until_records(stack, tid, lambda rs: len(rs) >= 3)
    assert all(r.outcome is not SlotOutcome.SKIPPED for r in found)


async def test_replace_cancels_the_running_job(nats_url: str, database_url: str) -> None:
    async with running_stack(nats_url, database_url) as stack:
        await stack.company()
        tid = await template(stack, "-c 'sleep 8'", overlap="replace", cron="*/3 * * * * *")
        found = await until_records(stack, tid, lambda rs: len([r for r in rs if r.job_id]) >= 2, 20)
        first = found[0].job_id
        assert first is not None
        replaced = await stack.final_job(first, timeout=15)
    assert replaced.kind is not None and replaced.kind.value == "cancelled", replaced


async def test_misfire_policies_after_the_scheduler_was_down(nats_url: str, database_url: str) -> None:
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        await stack.company()
        common = {"overlap": "allow", "cron": "* * * * * *"}
        skip = await template(stack, "-c true", misfire="skip", **common)
        once = await template(stack, "-c 'true 1'", misfire="fire_once", **common)
        catch = await template(stack, "-c 'true 2'", misfire="catch_up", catch_up_limit=3, **common)
        scheduler = make_scheduler(nats_url)
        await scheduler.start()
        await until_records(stack, catch, lambda rs: len(rs) >= 1)
        await scheduler.stop()
        await asyncio.sleep(6)
        restarted = make_scheduler(nats_url)
        await restarted.start()
        try:
            after_skip = await until_records(
                stack, skip, lambda rs: any(r.reason is SlotReason.MISFIRE for r in rs)
            )
            after_once = await until_records(
                stack, once, lambda rs: any(r.trigger is Trigger.FIRE_ONCE for r in rs)
            )
            after_catch = await until_records(
                stack, catch, lambda rs: any(r.trigger is Trigger.CATCH_UP for r in rs)
            )
        finally:
            await restarted.stop()
    assert len([r for r in after_skip if r.reason is SlotReason.MISFIRE]) >= 3
    assert len([r for r in after_once if r.trigger is Trigger.FIRE_ONCE]) == 1
    assert len([r for r in after_once if r.reason is SlotReason.MISFIRE]) >= 2
    caught = [r for r in after_catch if r.trigger is Trigger.CATCH_UP]
    assert len(caught) == 3 and all(r.job_id for r in caught)
    assert any(r.reason is SlotReason.MISFIRE for r in after_catch), (
        "slots beyond the limit were not recorded"
    )
    for found in (after_skip, after_once, after_catch):
        slots = [r.slot for r in found]
        assert len(slots) == len(set(slots))
        assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(slots)), (
            "a slot unaccounted for"
        )


async def test_pause_and_resume_a_company(nats_url: str, database_url: str) -> None:
    async with running_stack(nats_url, database_url) as stack:
        await stack.company()
        tid = await template(stack, "-c true", overlap="allow", misfire="fire_once")
        await until_records(stack, tid, lambda rs: len(rs) >= 1)
        await stack.client.call("company.pause", sc.CompanyRef(code="acme"), sc.CompanyPaused)
        paused = await until_records(
            stack, tid, lambda rs: sum(r.reason is SlotReason.PAUSED for r in rs) >= 3
        )
        assert (await explain(stack, tid)).company_paused
        listed = await stack.client.call("company.list", api.CompanyFilter(company="acme"), api.CompanyList)
        assert listed.companies[0].paused
        await stack.client.call("company.resume", sc.CompanyRef(code="acme"), sc.CompanyPaused)
        resumed = await until_records(stack, tid, lambda rs: any(r.trigger is Trigger.FIRE_ONCE for r in rs))
    assert all(r.job_id is None for r in paused if r.reason is SlotReason.PAUSED)
    assert len([r for r in resumed if r.trigger is Trigger.FIRE_ONCE]) == 1


async def test_backfill_runs_only_slots_that_did_not_run(nats_url: str, database_url: str) -> None:
    async with running_stack(nats_url, database_url) as stack:
        await stack.company()
        tid = await template(stack, "-c true", overlap="allow", cron="*/2 * * * * *")
        fired = await until_records(stack, tid, lambda rs: len(rs) >= 2)
        end = fired[-1].slot
        request = sc.Backfill(id=tid, start=end - timedelta(seconds=30), end=end)
        first = await stack.client.call("template.backfill", request, sc.BackfillReply)
        again = await stack.client.call("template.backfill", request, sc.BackfillReply)
        job = await stack.final_job(first.queued[0].job_id)
    ran_before = {r.job_id for r in fired}
    assert len(first.queued) + len(first.deduplicated) == 15
    assert {b.job_id for b in first.deduplicated} >= ran_before
    assert not {b.job_id for b in first.queued} & ran_before
    assert again.queued == [] and len(again.deduplicated) == 15
    assert job.launched_by == "backfill" and job.status.value == "processed"


async def test_backfill_refuses_a_future_range(nats_url: str, database_url: str) -> None:
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        await stack.company()
        tid = await template(stack, "-c true")
        now = datetime.now(UTC)
        request = sc.Backfill(id=tid, start=now, end=now + timedelta(hours=1))
        with pytest.raises(api.ApiFailure, match="future"):
            await stack.client.call("template.backfill", request, sc.BackfillReply)


async def test_changes_through_the_api_take_effect_without_a_restart(
    nats_url: str, database_url: str
) -> None:
    async with running_stack(nats_url, database_url) as stack:
        await stack.company()
        tid = await template(stack, "-c true", overlap="allow", cron="0 0 1 1 *")
        update = api.TemplateUpdate(id=tid, changes={"cron": "* * * * * *"})
        await stack.client.call("template.update", update, api.RunTemplate)
        await until_records(stack, tid, lambda rs: len(rs) >= 2, 10)
        await stack.client.call("template.pause", api.TemplateRef(id=tid), api.RunTemplate)
        await until_records(stack, tid, lambda rs: any(r.reason is SlotReason.PAUSED for r in rs), 10)
        await stack.client.call("template.resume", api.TemplateRef(id=tid), api.RunTemplate)
        await stack.client.call(
            "template.update", api.TemplateUpdate(id=tid, changes={"active": False}), api.RunTemplate
        )
        await asyncio.sleep(1.5)
        settled = len(await records(stack, tid))
        await asyncio.sleep(2)
        explanation = await explain(stack, tid)
    assert len(explanation.slots) == settled, "an inactive template kept firing"
    assert explanation.next == []
