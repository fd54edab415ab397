"""A template with no anchor yet (not run through a slot, or given a new schedule
since) owes the slots it missed since it was put on the schedule
(`scheduled_since`) to its misfire policy, as pure plan rules (no servers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.models import ActiveTemplate
from contracts.schedule import Misfire, SlotReason, Trigger
from scheduler.plan import Plan
from tests.unit.boards import active_template

T0 = datetime(2026, 3, 11, 10, 0, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)


def template(**fields: object) -> ActiveTemplate:
    defaults: dict[str, object] = {
        "cron": "* * * * *",
        "misfire": Misfire.CATCH_UP,
        "catch_up_limit": 100,
        "scheduled_since": T0 + 30 * SECOND,
    }
    return active_template(**(defaults | fields))


def test_a_template_that_never_ran_owes_the_slots_since_it_was_put_on_the_schedule() -> None:
    """Created while no scheduler ran, or just before a failover or a restart. Nothing
    is owed while the board is loaded (the slot records may still hold an anchor)."""
    plan = Plan(grace=1.0)
    plan.put(template(), T0 + 5 * MINUTE)
    assert plan.backlog() == [] and plan.next_due() == T0 + 6 * MINUTE
    plan.rebase({}, T0 + 5 * MINUTE + 10 * SECOND)
    owed = plan.backlog()
    assert [d.slot for d in owed] == [T0 + n * MINUTE for n in range(1, 6)]
    assert all(d.trigger is Trigger.CATCH_UP and d.skip is None for d in owed)


def test_each_slot_missed_since_is_recorded_and_none_from_before() -> None:
    """With `skip`, each slot since it was put on the schedule is recorded; a store
    clock running ahead owes nothing."""
    plan = Plan(grace=1.0)
    plan.put(template(misfire=Misfire.SKIP), T0 + 3 * MINUTE)
    ahead = template(id=2, scheduled_since=T0 + 10 * MINUTE)
    plan.put(ahead, T0 + 3 * MINUTE)
    plan.rebase({}, T0 + 3 * MINUTE + 10 * SECOND)
    owed = plan.backlog()
    assert [(d.template.id, d.slot, d.skip) for d in owed] == [
        (1, T0 + n * MINUTE, SlotReason.MISFIRE) for n in (1, 2, 3)
    ]


def test_no_slot_older_than_the_slot_records_is_owed() -> None:
    """Its anchor may be gone with its records (aged out, or a new NATS): nothing
    older is known to be missed."""
    plan = Plan(grace=1.0)
    plan.put(template(cron="0 * * * *", scheduled_since=T0 - timedelta(days=9)), T0)
    plan.rebase({}, T0 + 30 * MINUTE, records_from=T0 - 30 * MINUTE)
    assert [d.slot for d in plan.backlog()] == [T0]


def test_created_paused_and_resumed_owes_its_paused_slots_to_the_misfire_policy() -> None:
    plan = Plan(grace=1.0)
    plan.rebase({}, T0)
    plan.put(template(paused=True, misfire=Misfire.FIRE_ONCE), T0 + 30 * SECOND)
    for n in range(1, 5):  # the firer records each slot paused and moves the timer on
        (due,) = plan.take_due(T0 + n * MINUTE)
        plan.advance(1, due.slot)
    plan.put(template(misfire=Misfire.FIRE_ONCE), T0 + 4 * MINUTE + 20 * SECOND)
    assert [(d.slot, d.trigger) for d in plan.backlog()] == [(T0 + 4 * MINUTE, Trigger.FIRE_ONCE)]
    assert plan.anchor(1) == T0 + 4 * MINUTE


def test_a_new_schedule_owes_from_when_it_took_effect() -> None:
    """Rescheduled (its anchor dropped), and not fired on the new schedule before a restart."""
    plan = Plan(grace=1.0)
    plan.put(template(cron="0 * * * *"), T0)
    plan.rebase({1: T0}, T0 + 40 * SECOND)
    plan.put(template(cron="*/2 * * * *", scheduled_since=T0 + 50 * SECOND), T0 + 50 * SECOND)
    assert plan.anchor(1) is None
    restarted = Plan(grace=1.0)
    restarted.put(template(cron="*/2 * * * *", scheduled_since=T0 + 50 * SECOND), T0 + 7 * MINUTE)
    restarted.rebase({}, T0 + 7 * MINUTE)
    assert [d.slot for d in restarted.backlog()] == [T0 + n * MINUTE for n in (2, 4, 6)]
