"""The plan's rules: what a template change, a fire and a failed publish do to
the pending slot, and how a due slot becomes a job message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bus.handoff import Handoff
from contracts.dispatch import scheduled_job_id
from contracts.models import ActiveTemplate
from scheduler.entry import Entry
from scheduler.firing import Firing, Unbuildable, build
from scheduler.plan import Backoff, Due, Plan

NOW = datetime(2026, 5, 4, 10, 17, 42, 250_000, tzinfo=UTC)
HANDOFF = Handoff(None, None)  # type: ignore[arg-type]  # preparing needs no connection


def template(
    template_id: int = 1, cron: str = "* * * * *", revision: str = "r1", **fields: object
) -> ActiveTemplate:
    values: dict[str, object] = {
        "id": template_id,
        "revision": revision,
        "name": f"t{template_id}",
        "company": "acme",
        "pool": "default",
        "app_id": 7,
        "executable": "/bin/echo",
        "cmdparams": "hello {WHO}",
        "env": {"WHO": "world"},
        "cron": cron,
    }
    values.update(fields)
    return ActiveTemplate.model_validate(values)


def minute(n: int) -> datetime:
    return datetime(2026, 5, 4, 10, 17 + n, tzinfo=UTC)


def test_new_template_fires_first_at_the_next_slot_after_now() -> None:
    plan = Plan()
    plan.put(template(), NOW)
    assert plan.next_due() == minute(1)
    assert plan.ids() == {1}


def test_nothing_is_due_before_its_slot() -> None:
    plan = Plan()
    plan.put(template(), NOW)
    assert plan.take_due(NOW) == []
    assert plan.take_due(minute(1)) == [Due(Entry.of(template()), minute(1))]


def test_advance_schedules_the_slot_after_the_published_one() -> None:
    plan = Plan()
    plan.put(template(), NOW)
    (due,) = plan.take_due(minute(1))
    assert plan.timer(1) is None
    plan.advance(1, due.slot)
    assert plan.next_due() == minute(2)


def test_advance_after_a_long_publish_catches_up_slot_by_slot() -> None:
    plan = Plan()
    plan.put(template(), NOW)
    (due,) = plan.take_due(minute(5))
    plan.advance(1, due.slot)
    assert plan.take_due(minute(5)) == [Due(Entry.of(template()), minute(2))]


def test_same_schedule_keeps_the_pending_slot_with_the_new_definition() -> None:
    plan = Plan()
    plan.put(template(cron="0 * * * *"), NOW)
    plan.put(template(cron="0 * * * *", revision="r2", env={"WHO": "you"}), NOW + timedelta(hours=5))
    timer = plan.timer(1)
    assert timer is not None
    assert (timer.due, timer.revision) == (datetime(2026, 5, 4, 11, tzinfo=UTC), "r2")
    (due,) = plan.take_due(datetime(2026, 5, 4, 11, tzinfo=UTC))
    assert due.template.template().env == {"WHO": "you"}


def test_new_cron_reschedules_from_now() -> None:
    plan = Plan()
    plan.put(template(cron="0 0 1 1 *"), NOW)
    plan.put(template(cron="* * * * * *", revision="r2"), NOW)
    assert plan.next_due() == datetime(2026, 5, 4, 10, 17, 43, tzinfo=UTC)


def test_new_timezone_reschedules() -> None:
    plan = Plan()
    plan.put(template(cron="0 14 * * *"), NOW)
    assert plan.next_due() == datetime(2026, 5, 4, 14, tzinfo=UTC)
    plan.put(template(cron="0 14 * * *", timezone="Europe/Prague", revision="r2"), NOW)
    assert plan.next_due() == datetime(2026, 5, 4, 12, tzinfo=UTC)


def test_removed_template_never_fires() -> None:
    plan = Plan()
    plan.put(template(), NOW)
    plan.remove(1)
    plan.remove(1)
    assert plan.next_due() is None
    assert plan.take_due(minute(10)) == []


def test_removed_while_publishing_is_not_rescheduled() -> None:
    plan = Plan()
    plan.put(template(), NOW)
    (due,) = plan.take_due(minute(1))
    plan.remove(1)
    plan.advance(1, due.slot)
    assert plan.next_due() is None
    assert plan.retry(1, due.slot, minute(1)) is None
    assert plan.next_due() is None


def test_changed_while_publishing_keeps_the_new_schedule() -> None:
    plan = Plan()
    plan.put(template(), NOW)
    (due,) = plan.take_due(minute(1))
    plan.put(template(cron="0 0 * * *", revision="r2"), minute(1))
    plan.advance(1, due.slot)
    assert plan.next_due() == datetime(2026, 5, 5, tzinfo=UTC)


def test_failed_slot_is_retried_with_the_latest_definition() -> None:
    plan = Plan()
    plan.put(template(), NOW)
    (due,) = plan.take_due(minute(1))
    plan.put(template(revision="r2", env={"WHO": "again"}), minute(1))
    assert plan.retry(1, due.slot, minute(1)) == minute(1) + timedelta(seconds=1)
    assert plan.take_due(minute(1)) == []
    (again,) = plan.take_due(minute(1) + timedelta(seconds=1))
    assert (again.slot, again.template.revision) == (minute(1), "r2")


def test_a_change_while_waiting_to_retry_keeps_the_failed_slot() -> None:
    plan = Plan()
    plan.put(template(), NOW)
    (due,) = plan.take_due(minute(1))
    retry_at = plan.retry(1, due.slot, minute(1) + timedelta(milliseconds=300))
    plan.put(template(revision="r2", env={"WHO": "later"}), minute(1) + timedelta(milliseconds=500))
    assert plan.next_due() == retry_at
    (again,) = plan.take_due(minute(2))
    assert (again.slot, again.template.revision) == (minute(1), "r2")


def test_retries_back_off_per_template_and_reset_after_success() -> None:
    plan = Plan(Backoff(first=1.0, cap=5.0))
    plan.put(template(1), NOW)
    plan.put(template(2, cron="0 * * * *"), NOW)
    now, delays = minute(1), []
    for _ in range(5):
        (due,) = plan.take_due(now)
        assert (due.template.id, due.slot) == (1, minute(1))
        retry_at = plan.retry(1, due.slot, now)
        assert retry_at is not None
        delays.append((retry_at - now).total_seconds())
        now = retry_at
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]
    # Template 2 keeps its own timer whatever template 1 does.
    timer = plan.timer(2)
    assert timer is not None and timer.due == datetime(2026, 5, 4, 11, tzinfo=UTC)
    # Success resets the back-off.
    (due,) = plan.take_due(now)
    plan.advance(1, due.slot)
    assert plan.next_due() == minute(2)
    (due,) = plan.take_due(minute(2))
    assert plan.retry(1, due.slot, minute(2)) == minute(2) + timedelta(seconds=1)


def test_backoff_delay_is_capped_even_after_many_failures() -> None:
    assert Backoff(first=0.5, cap=30.0).delay(1) == timedelta(seconds=0.5)
    assert Backoff(first=0.5, cap=30.0).delay(10_000) == timedelta(seconds=30)


def test_invalid_schedule_is_dropped_not_fired() -> None:
    plan = Plan()
    plan.put(template(), NOW)
    plan.put(template(cron="not a cron", revision="r2"), NOW)
    plan.put(template(2, timezone="Nowhere/Land"), NOW)
    assert len(plan) == 0
    assert plan.next_due() is None


def test_retain_forgets_templates_no_longer_on_the_board() -> None:
    plan = Plan()
    for template_id in (1, 2, 3):
        plan.put(template(template_id), NOW)
    plan.retain({2})
    assert plan.ids() == {2}
    assert [d.template.id for d in plan.take_due(minute(1))] == [2]


def test_refused_templates_are_counted_until_mended_removed_or_gone_from_the_board() -> None:
    plan = Plan()
    for template_id in (1, 2, 3):
        plan.put(template(template_id, timezone="Mars/Olympus"), NOW)
    assert plan.refused() == 3 and plan.ids() == set()
    plan.put(template(1), NOW)
    plan.remove(2)
    assert plan.refused() == 1
    plan.retain({1})
    assert plan.refused() == 0 and plan.ids() == {1}


def test_build_derives_the_job_id_from_template_and_slot() -> None:
    firing = build(Due(Entry.of(template()), minute(1)), NOW, HANDOFF.prepare)
    assert isinstance(firing, Firing)
    message = firing.message
    assert message.job_id == scheduled_job_id(1, minute(1))
    assert (message.scheduled_at, message.dispatched_at) == (minute(1), NOW)
    assert message.argv == ["/bin/echo", "hello", "world"]
    assert (message.company, message.pool, message.template_id) == ("acme", "default", 1)


def test_build_reports_a_template_that_makes_no_valid_message() -> None:
    # Bypass validation as a board entry written by a buggy or older store could.
    broken = template().model_copy(update={"company": "Not A Code"})
    outcome = build(Due(Entry.of(broken), minute(1)), NOW, HANDOFF.prepare)
    assert isinstance(outcome, Unbuildable)
    assert "template 1 makes an invalid job message" in outcome.reason


def test_same_schedule_seen_again_while_its_slot_is_being_published_keeps_that_slot() -> None:
    plan = Plan()
    plan.put(template(), NOW)
    (due,) = plan.take_due(minute(1))
    plan.mark(1, due.slot)
    plan.put(template(revision="r2"), minute(3))  # e.g. the board re-read after a reconnect
    assert plan.backlog() == [] and plan.timer(1) is None
    plan.retry(1, due.slot, minute(3))
    timer = plan.timer(1)
    assert timer is not None and timer.slot == minute(1) and timer.revision == "r2"


def test_a_template_off_the_board_at_a_takeover_owes_nothing_when_it_comes_back() -> None:
    """Inactive (off the board) when a new leader read the anchors: its recorded
    anchor is dropped, as `remove` drops it while leading, so re-activating it
    owes no slot of its inactive time. A paused template keeps its anchor."""
    every_second = {"cron": "* * * * * *", "misfire": "catch_up"}
    plan = Plan(grace=1.0)
    plan.put(template(2, paused=True, **every_second), NOW)
    plan.rebase({1: NOW, 2: NOW}, NOW + timedelta(seconds=30))
    assert plan.anchor(1) is None and plan.anchor(2) == NOW
    assert {d.template.id for d in plan.backlog()} == {2}
    plan.put(template(1, **every_second), NOW + timedelta(seconds=40))
    assert {d.template.id for d in plan.backlog()} == {2}
    pending = plan.timer(1)
    assert pending is not None and pending.slot == datetime(2026, 5, 4, 10, 18, 23, tzinfo=UTC)
