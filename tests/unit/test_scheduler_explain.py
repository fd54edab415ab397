"""The human form of `jetjobs template explain`."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts import schedule as sc
from jetjobs.cli_schedule import explain_text

SLOT = datetime(2026, 3, 11, 10, 0, tzinfo=UTC)


def explanation(**fields: object) -> sc.Explanation:
    values: dict[str, object] = {
        "template_id": 7,
        "name": "nightly",
        "company": "acme",
        "cron": "0 2 * * *",
        "timezone": "Europe/Prague",
        "active": True,
        "paused": False,
        "company_paused": False,
        "company_enabled": True,
        "overlap": "forbid",
        "misfire": "skip",
        "jitter": 0.0,
        "leader": "jetjobs-scheduler@host:1:abc",
        "next": [datetime(2026, 3, 12, 1, tzinfo=UTC)],
    }
    return sc.Explanation.model_validate(values | fields)


def record(**fields: object) -> sc.SlotRecord:
    values: dict[str, object] = {"template_id": 7, "company": "acme", "slot": SLOT, "recorded_at": SLOT}
    return sc.SlotRecord.model_validate(values | fields)


def test_explain_names_the_zone_and_utc_times_and_the_leader() -> None:
    text = explain_text(explanation())
    assert "2026-03-12T02:00:00+01:00" in text and "2026-03-12T01:00:00+00:00" in text
    assert "leader jetjobs-scheduler@host:1:abc" in text
    assert ": scheduled" in text


def test_explain_says_why_a_slot_did_not_run() -> None:
    views = [
        sc.SlotView(record=record(outcome="skipped", reason="overlap", detail="job x still active")),
        sc.SlotView(record=record(outcome="fired", job_id="j1"), job_status="error", job_kind="exit"),
    ]
    text = explain_text(explanation(slots=views, paused=True, leader=None))
    assert "skipped (overlap)" in text and "job x still active" in text
    assert "error (exit)" in text
    assert "paused" in text and "NO scheduler is leading" in text
