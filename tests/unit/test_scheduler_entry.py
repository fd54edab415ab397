"""The compact entry the scheduler holds per template, and the wire form its
messages are prepared in ahead of their instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from bus.handoff import Handoff
from contracts import subjects as s
from contracts.dispatch import job_message, scheduled_job_id
from contracts.messages import JobMessage
from contracts.models import MAX_RETRIES, MAX_TIMEOUT, ActiveTemplate, Timeouts
from contracts.schedule import Misfire, Overlap
from scheduler.entry import Entry
from scheduler.plan import Plan

SLOT = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def template(template_id: int = 1, **fields: object) -> ActiveTemplate:
    values: dict[str, object] = {
        "id": template_id,
        "revision": "r1",
        "name": f"t{template_id}",
        "company": "acme",
        "pool": "default",
        "app_id": 7,
        "executable": "/bin/echo",
        "cmdparams": "hello {WHO}",
        "env": {"WHO": "world"},
        "cron": "*/5 * * * *",
        "timezone": "Europe/Prague",
    }
    return ActiveTemplate.model_validate(values | fields)


def test_entry_keeps_what_firing_needs_and_decodes_the_whole_template() -> None:
    original = template(overlap="replace", misfire="catch_up", catch_up_limit=3, jitter=2.5, paused=True)
    entry = Entry.of(original)
    assert (entry.id, entry.revision, entry.company) == (1, "r1", "acme")
    assert (entry.cron, entry.timezone) == ("*/5 * * * *", "Europe/Prague")
    assert (entry.overlap, entry.misfire, entry.catch_up_limit) == (Overlap.REPLACE, Misfire.CATCH_UP, 3)
    assert (entry.jitter, entry.paused) == (2.5, True)
    assert entry.template() == original


def test_entry_keeps_the_board_bytes_it_was_given() -> None:
    raw = template().model_dump_json(indent=1).encode()
    entry = Entry.of(ActiveTemplate.model_validate_json(raw), raw)
    assert entry.raw is raw
    assert entry.template() == template()


def test_run_horizon_covers_every_attempt_plus_a_minute() -> None:
    limits = Timeouts(timeout=10, timeout_ack=2, timeout_result=30)
    entry = Entry.of(template(timeouts=limits.model_dump(), retries=2))
    assert entry.horizon == timedelta(seconds=10 + (2 + 30) * 3 + 60)


def test_templates_sharing_a_schedule_share_its_strings() -> None:
    one = Entry.of(ActiveTemplate.model_validate_json(template(1).model_dump_json()))
    two = Entry.of(ActiveTemplate.model_validate_json(template(2).model_dump_json()))
    assert one.cron is two.cron and one.timezone is two.timezone and one.company is two.company


def test_a_prepared_message_is_one_protocol_frame_with_its_dedup_id_and_ack_reply() -> None:
    message = job_message(template(), job_id=scheduled_job_id(1, SLOT), slot=SLOT, now=SLOT)
    handoff = Handoff(None, None)  # type: ignore[arg-type]  # preparing needs no connection
    first, second = handoff.prepare(message), handoff.prepare(message)
    assert first.token != second.token
    assert first.subject == s.dispatch_subject("acme", "default")
    assert first.msg_id == s.dispatch_msg_id(message.job_id, 1)
    line, _, rest = first.frame.partition(b"\r\n")
    op, subject, reply, header_size, total = line.decode().split(" ")
    assert (op, subject, reply) == ("HPUB", first.subject, first.token)
    header, body = rest[: int(header_size)], rest[int(header_size) : int(total)]
    assert header == f"NATS/1.0\r\nNats-Msg-Id: {first.msg_id}\r\n\r\n".encode()
    assert rest[int(total) :] == b"\r\n"
    assert first.size == int(total)
    assert JobMessage.model_validate_json(body) == message


STORED_TOO_LONG = {"timeout": 1e14, "timeout_ack": 30, "timeout_result": 60}
"""Timeouts a template could be saved with before they were bounded."""


def test_a_template_with_timeouts_out_of_bounds_has_no_entry() -> None:
    with pytest.raises(ValueError, match="timeout 100000000000000 s is too long"):
        Entry.of(template(timeouts=STORED_TOO_LONG))
    with pytest.raises(ValueError, match=r"timeout_ack 0\.0001 s is too short"):
        Entry.of(template(timeouts={"timeout_ack": 0.0001}))


def test_the_longest_horizon_the_bounds_allow_is_still_a_date() -> None:
    longest = {"timeout": MAX_TIMEOUT, "timeout_ack": MAX_TIMEOUT, "timeout_result": MAX_TIMEOUT}
    entry = Entry.of(template(timeouts=longest, retries=MAX_RETRIES))
    assert SLOT + entry.horizon > SLOT


def test_a_template_that_cannot_be_scheduled_is_skipped_and_the_others_go_on() -> None:
    plan, stored = Plan(), template(2, timeouts=STORED_TOO_LONG)
    with capture_logs() as logs:
        plan.put(template(1), SLOT)
        plan.put(stored, SLOT, stored.model_dump_json().encode())  # as read from the board
        plan.put(template(3), SLOT)
    assert plan.ids() == {1, 3}
    [invalid] = [line for line in logs if line["event"] == "schedule.invalid_template"]
    assert invalid["template_id"] == 2 and "too long" in invalid["reason"]
    assert [due.template.id for due in plan.take_due(SLOT + timedelta(minutes=5))] == [1, 3]


def test_a_change_that_cannot_be_scheduled_drops_the_template_until_it_is_fixed() -> None:
    plan = Plan()
    plan.put(template(1), SLOT)
    plan.put(template(1, revision="r2", timeouts=STORED_TOO_LONG), SLOT)
    assert plan.ids() == set() and plan.next_due() is None
    plan.put(template(1, revision="r3"), SLOT)
    assert plan.ids() == {1}
