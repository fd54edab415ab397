"""The slot records a scheduler reads back as it starts: one that is not a record is
skipped, and the log says which and why."""

from __future__ import annotations

from datetime import UTC, datetime

from structlog.testing import capture_logs

from bus import Bus, Layout
from bus.slots import SlotLog
from contracts import subjects as s
from contracts.schedule import SlotRecord


async def test_a_slot_record_that_does_not_parse_is_skipped_and_named(nats_url: str) -> None:
    bus = await Bus.open(nats_url, "slot-log", Layout())
    try:
        log = SlotLog(bus.js, bus.publisher)
        good = SlotRecord.model_validate(
            {
                "template_id": 1,
                "company": "acme",
                "slot": datetime(2026, 1, 1, tzinfo=UTC),
                "outcome": "fired",
                "recorded_at": datetime.now(UTC),
            }
        )
        await log.record([good])
        ack = await bus.js.publish(s.slots_subject("acme", 2), b"not a record")
        with capture_logs() as logs:
            found = await log.latest(idle=1.0)
        assert list(found) == [1]
        [warning] = [e for e in logs if e["event"] == "slots.invalid_record"]
        assert warning["subject"] == s.slots_subject("acme", 2) and warning["sequence"] == ack.seq
        assert "JSON" in str(warning["reason"]), warning
    finally:
        await bus.close()
