"""A new jitter moves the pending slot's due time (pure plan rules, no servers)."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.models import ActiveTemplate
from scheduler.plan import Plan
from scheduler.policy import jitter
from tests.unit.boards import active_template

NOW = datetime(2026, 5, 4, 10, 17, 42, tzinfo=UTC)
NEXT = datetime(2026, 5, 4, 10, 18, tzinfo=UTC)


def template(**fields: object) -> ActiveTemplate:
    return active_template(**({"cron": "* * * * *"} | fields))


def test_a_new_jitter_moves_the_pending_slot() -> None:
    plan = Plan()
    plan.put(template(jitter=50.0), NOW)
    changed = template(jitter=5.0, revision="r2")
    plan.put(changed, NOW)
    timer, entry = plan.timer(1), plan.entry(1)
    assert timer is not None and entry is not None
    assert (timer.slot, timer.revision) == (NEXT, "r2") and timer.due == NEXT + jitter(entry, NEXT)
    plan.put(template(revision="r3"), NOW)
    timer = plan.timer(1)
    assert timer is not None and timer.due == NEXT
