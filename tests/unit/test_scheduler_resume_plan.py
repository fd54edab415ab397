"""What a resume owes and when owed runs go, as pure plan rules (no servers): the
slots missed while paused up to the one not yet decided, owed runs before their
template's on-time slot, and with `forbid` one at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.models import ActiveTemplate
from contracts.schedule import Misfire, Trigger
from scheduler.plan import Plan
from tests.unit.boards import active_template

T0 = datetime(2026, 3, 11, 10, 0, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def template(template_id: int = 1, **fields: object) -> ActiveTemplate:
    defaults: dict[str, object] = {"id": template_id, "name": f"t{template_id}", "misfire": Misfire.CATCH_UP}
    return active_template(**(defaults | {"catch_up_limit": 3} | fields))


def paused_through(plan: Plan, last: int) -> None:
    """The template ran at T0, then was paused: the firer recorded slots 1..`last`
    paused, each moving its timer on."""
    plan.put(template(), T0)
    plan.mark(1, T0)
    plan.put(template(paused=True), T0)
    for n in range(1, last + 1):
        (due,) = plan.take_due(T0 + n * SECOND)
        plan.advance(1, due.slot)


def test_a_resume_after_the_next_slot_was_prepared_owes_the_slots_before_it() -> None:
    plan = Plan(grace=1.0)
    paused_through(plan, 4)
    (prepared,) = plan.take_due(T0 + 5 * SECOND)  # half a second ahead of slot 5
    plan.put(template(), T0 + 4.7 * SECOND)
    assert [d.slot for d in plan.backlog()] == [T0 + n * SECOND for n in (2, 3, 4)]
    assert prepared.slot == T0 + 5 * SECOND and plan.anchor(1) == T0 + 4 * SECOND


def test_owed_runs_go_before_the_on_time_slot_of_their_template_only() -> None:
    plan = Plan(grace=1.0)
    paused_through(plan, 4)
    plan.put(template(2), T0 + 4.1 * SECOND)
    assert {d.template.id for d in plan.take_due(T0 + 5 * SECOND)} == {1, 2}
    plan.put(template(), T0 + 4.7 * SECOND)
    assert plan.owes() and plan.take_owed({2}) == []
    owed = plan.take_owed({1})
    assert [(d.slot, d.trigger) for d in owed] == [(T0 + n * SECOND, Trigger.CATCH_UP) for n in (2, 3, 4)]
    assert not plan.owes()


def test_owed_runs_waiting_for_the_active_run_go_in_slot_order_when_it_ends() -> None:
    plan = Plan(grace=1.0)
    paused_through(plan, 4)
    plan.put(template(), T0 + 4.3 * SECOND)
    _, *rest = plan.take_due(T0 + 4.3 * SECOND)
    horizon = T0 + 10 * 60 * SECOND
    for due in reversed(rest):
        plan.hold(due, horizon)
    assert plan.backlog() == [] and plan.next_due() == T0 + 5 * SECOND
    assert plan.release(1)
    assert [d.slot for d in plan.take_due(T0 + 4.5 * SECOND)] == [d.slot for d in rest]
    assert not plan.release(1)


def test_owed_runs_go_at_the_active_runs_horizon_if_its_end_is_never_seen() -> None:
    plan = Plan(grace=1.0)
    plan.put(template(cron="0 0 * * *"), T0 - 3 * 86400 * SECOND)
    plan.rebase({1: T0 - 3 * 86400 * SECOND}, T0)
    _, *rest = plan.take_due(T0)
    horizon = T0 + 90 * SECOND
    for due in rest:
        plan.hold(due, horizon)
    assert plan.next_due() == horizon
    assert plan.take_due(horizon - SECOND) == []
    assert [d.slot for d in plan.take_due(horizon)] == [d.slot for d in rest]


def test_a_template_leaving_the_board_drops_its_waiting_runs() -> None:
    plan = Plan(grace=1.0)
    paused_through(plan, 4)
    plan.put(template(), T0 + 4.3 * SECOND)
    _, *rest = plan.take_due(T0 + 4.3 * SECOND)
    for due in rest:
        plan.hold(due, T0 + 60 * SECOND)
    plan.remove(1)
    assert plan.next_due() is None and not plan.release(1)
