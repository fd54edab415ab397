"""Owed runs (misfire policy) of a template paused before they started: the
resume counts their slots with those missed while paused, and owes none twice,
as pure plan rules (no servers). The firer records them paused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.models import ActiveTemplate
from contracts.schedule import Misfire, Trigger
from scheduler.plan import Plan
from tests.unit.boards import active_template

T0 = datetime(2026, 3, 11, 10, 0, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
HORIZON = T0 + 600 * SECOND


def template(**fields: object) -> ActiveTemplate:
    return active_template(**({"misfire": Misfire.CATCH_UP, "catch_up_limit": 3} | fields))


def after_an_outage(plan: Plan) -> None:
    """Down from T0 to 10.3 s: slots 7, 8 and 9 are owed; 7 runs, 8 and 9 wait for
    it (`forbid`); slot 10, due by then, is skipped while 7 runs (the firer marks it)."""
    plan.put(template(), T0)
    plan.rebase({1: T0}, T0 + 10.3 * SECOND)
    dues = plan.take_due(T0 + 10.3 * SECOND)
    owed = [due for due in dues if due.skip is None and not due.from_timer]
    assert [d.slot for d in owed] == [T0 + n * SECOND for n in (7, 8, 9)]
    plan.mark(1, owed[0].slot)
    for due in owed[1:]:
        plan.hold(due, HORIZON)
    (on_time,) = [due for due in dues if due.from_timer]
    plan.mark(1, on_time.slot)
    plan.advance(1, on_time.slot)


def test_owed_runs_a_pause_held_back_are_owed_again_on_resume() -> None:
    plan = Plan(grace=1.0)
    after_an_outage(plan)
    plan.put(template(paused=True), T0 + 10.5 * SECOND)
    assert plan.release(1)
    for due in plan.take_due(T0 + 10.6 * SECOND):  # decided while paused: recorded, held back
        plan.paused_owed(due)
    (paused,) = plan.take_due(T0 + 11 * SECOND)
    plan.advance(1, paused.slot)
    plan.put(template(), T0 + 11.3 * SECOND)
    owed = plan.backlog()
    assert [(d.slot, d.trigger) for d in owed] == [(T0 + n * SECOND, Trigger.CATCH_UP) for n in (8, 9, 11)]


def test_a_resume_owes_no_run_that_is_still_owed() -> None:
    """Paused and resumed while owed runs still wait for the active run: they go
    as owed, once, not owed again by the resume."""
    minute = 60 * SECOND
    plan = Plan(grace=1.0)
    plan.put(template(cron="* * * * *"), T0)
    plan.rebase({1: T0}, T0 + 10 * minute + 20 * SECOND)
    owed = plan.take_due(T0 + 10 * minute + 20 * SECOND)
    ran, *waiting = [due for due in owed if due.skip is None]
    assert [d.slot for d in waiting] == [T0 + 9 * minute, T0 + 10 * minute]
    plan.mark(1, ran.slot)
    for due in waiting:
        plan.hold(due, HORIZON)
    plan.put(template(cron="* * * * *", paused=True), T0 + 10 * minute + 30 * SECOND)
    plan.put(template(cron="* * * * *"), T0 + 10 * minute + 40 * SECOND)
    assert plan.backlog() == []
    assert plan.release(1)
    assert [d.slot for d in plan.take_due(T0 + 10 * minute + 45 * SECOND)] == [d.slot for d in waiting]
