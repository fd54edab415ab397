"""Misfire, pause/resume, jitter and the anchor, as pure plan rules (no servers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.models import ActiveTemplate
from contracts.schedule import Misfire, SlotReason, Trigger
from scheduler.cron import next_fire
from scheduler.plan import Plan
from scheduler.policy import jitter, misfire
from tests.unit.boards import active_template

T0 = datetime(2026, 3, 11, 10, 0, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def template(**fields: object) -> ActiveTemplate:
    return active_template(**fields)


MISSED = [T0 + n * SECOND for n in range(1, 6)]


def test_skip_records_every_missed_slot_and_runs_none() -> None:
    dues = misfire(template(misfire=Misfire.SKIP), MISSED, recorded=False)
    assert [d.slot for d in dues] == MISSED
    assert all(d.skip is SlotReason.MISFIRE for d in dues)


def test_fire_once_runs_the_latest_missed_slot_only() -> None:
    dues = misfire(template(misfire=Misfire.FIRE_ONCE), MISSED, recorded=False)
    fired = [d for d in dues if d.skip is None]
    assert [(d.slot, d.trigger) for d in fired] == [(MISSED[-1], Trigger.FIRE_ONCE)]
    assert len(dues) == len(MISSED)


def test_catch_up_runs_the_latest_slots_up_to_the_limit() -> None:
    dues = misfire(template(misfire=Misfire.CATCH_UP, catch_up_limit=3), MISSED, recorded=False)
    assert [d.slot for d in dues if d.skip is None] == MISSED[-3:]
    assert [d.slot for d in dues if d.skip is SlotReason.MISFIRE] == MISSED[:2]


def test_after_a_pause_only_runs_are_added() -> None:
    assert misfire(template(misfire=Misfire.SKIP), MISSED, recorded=True) == []
    dues = misfire(template(misfire=Misfire.CATCH_UP, catch_up_limit=2), MISSED, recorded=True)
    assert [d.slot for d in dues] == MISSED[-2:]


def test_a_template_seen_again_after_an_outage_owes_its_missed_slots() -> None:
    plan = Plan(grace=1.0)
    plan.put(template(misfire=Misfire.CATCH_UP, catch_up_limit=100), T0)
    now = T0 + 10 * SECOND + timedelta(milliseconds=300)
    plan.rebase({1: T0}, now)
    owed = plan.take_due(now)
    slots = [d.slot for d in owed]
    assert slots[0] == T0 + SECOND and slots[-1] == T0 + 10 * SECOND
    assert all(d.trigger is Trigger.CATCH_UP for d in owed if not d.from_timer)
    assert len(slots) == len(set(slots)) == 10


def test_a_new_template_owes_nothing() -> None:
    plan = Plan()
    plan.put(template(misfire=Misfire.CATCH_UP), T0)
    assert plan.backlog() == []
    assert plan.next_due() == T0 + SECOND


def test_resuming_a_paused_template_applies_its_misfire_policy() -> None:
    """Every slot skipped while paused counts, the one just before the resume too
    (0.3 s before it: within `misfire_grace`, yet already recorded paused)."""
    plan = Plan(grace=1.0)
    plan.put(template(misfire=Misfire.FIRE_ONCE), T0)
    plan.mark(1, T0)
    plan.put(template(misfire=Misfire.FIRE_ONCE, paused=True), T0)
    for n in range(1, 6):  # the firer records each slot paused and moves the timer on
        (due,) = plan.take_due(T0 + n * SECOND)
        plan.advance(1, due.slot)
    plan.put(template(misfire=Misfire.FIRE_ONCE, paused=False), T0 + 5.3 * SECOND)
    owed = plan.backlog()
    assert [(d.slot, d.trigger) for d in owed] == [(T0 + 5 * SECOND, Trigger.FIRE_ONCE)]
    assert plan.anchor(1) == T0 + 5 * SECOND
    assert plan.next_due() == T0 + 5 * SECOND and plan.take_due(T0 + 5.3 * SECOND) == owed


def test_a_schedule_change_forgets_the_anchor() -> None:
    plan = Plan()
    plan.put(template(), T0)
    plan.mark(1, T0)
    plan.put(template(cron="*/5 * * * * *"), T0 + 30 * SECOND)
    assert plan.anchor(1) is None and plan.backlog() == []


def test_jitter_is_deterministic_bounded_and_delays_the_timer() -> None:
    jittered = template(jitter=10.0)
    delays = {jitter(jittered, T0 + n * SECOND) for n in range(50)}
    assert all(timedelta(0) <= d < timedelta(seconds=10) for d in delays) and len(delays) > 10
    assert jitter(jittered, T0) == jitter(jittered, T0)
    plan = Plan()
    plan.put(jittered, T0)
    timer = plan.timer(1)
    assert timer is not None and timer.slot == next_fire("* * * * * *", "UTC", T0)
    assert timer.due == timer.slot + jitter(jittered, timer.slot)


def test_single_value_range_is_not_read_as_every_value() -> None:
    # croniter reads `0-0` as `*`; the contract reads it as `0`.
    after = datetime(2026, 3, 29, 1, tzinfo=UTC)
    assert next_fire("* 0-0 * * *", "Europe/Prague", after) == datetime(2026, 3, 29, 22, tzinfo=UTC)
