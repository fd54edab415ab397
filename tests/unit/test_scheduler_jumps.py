"""The wall clock jumping ahead while the scheduler leads (an NTP step, a VM or
laptop resumed): the slots it skipped go to each template's misfire policy, as
slots missed while the scheduler was down do, instead of all firing back to back."""

from __future__ import annotations

from datetime import timedelta

from contracts.schedule import Misfire, SlotReason, Trigger
from scheduler.entry import Entry
from scheduler.plan import Due, Plan
from tests.unit.test_scheduler_plan import NOW, minute, template

JUMP = minute(30) + timedelta(seconds=5)
"""Where the clock lands: 30 minutes after the pending slot."""


def owed(plan: Plan, when: object = JUMP) -> list[tuple[object, Trigger, SlotReason | None]]:
    return [(due.slot, due.trigger, due.skip) for due in plan.take_due(when)]  # type: ignore[arg-type]


def test_a_jump_skips_the_slots_it_passed_under_policy_skip() -> None:
    plan = Plan()
    plan.put(template(), NOW)
    assert plan.overdue(JUMP) == 1
    taken = owed(plan)
    assert [slot for slot, _, _ in taken] == [minute(n) for n in range(1, 31)]
    assert {(trigger, reason) for _, trigger, reason in taken} == {(Trigger.SCHEDULE, SlotReason.MISFIRE)}
    assert plan.next_due() == minute(31)  # the schedule goes on from the new time


def test_a_jump_runs_one_slot_under_fire_once_and_the_last_ones_under_catch_up() -> None:
    plan = Plan()
    plan.put(template(1, misfire=Misfire.FIRE_ONCE), NOW)
    plan.put(template(2, misfire=Misfire.CATCH_UP, catch_up_limit=3), NOW)
    assert plan.overdue(JUMP) == 2
    runs = [(due.template.id, due.slot, due.trigger) for due in plan.take_due(JUMP) if due.skip is None]
    assert sorted(runs) == [
        (1, minute(30), Trigger.FIRE_ONCE),
        (2, minute(28), Trigger.CATCH_UP),
        (2, minute(29), Trigger.CATCH_UP),
        (2, minute(30), Trigger.CATCH_UP),
    ]


def test_a_template_being_fired_during_the_jump_resumes_after_it() -> None:
    plan = Plan()
    plan.put(template(), NOW)
    (firing,) = plan.take_due(minute(1))
    assert firing == Due(Entry.of(template()), minute(1))
    assert plan.overdue(JUMP) == 0  # nothing waits in the heap: its slot is being fired
    plan.advance(1, firing.slot)
    assert [slot for slot, _, reason in owed(plan) if reason is SlotReason.MISFIRE] == [
        minute(n) for n in range(2, 31)
    ]
    assert plan.next_due() == minute(31)


def test_slots_within_the_grace_are_left_to_fire_late() -> None:
    plan = Plan(grace=1.0)
    plan.put(template(), NOW)
    assert plan.overdue(minute(1) + timedelta(seconds=0.5)) == 0
    assert plan.next_due() == minute(1)
