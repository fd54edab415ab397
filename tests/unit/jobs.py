"""A job message for unit tests: sensible defaults, and whatever fields a test sets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from contracts.messages import JobMessage

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def message(**fields: Any) -> JobMessage:
    values: dict[str, Any] = {
        "job_id": "j1",
        "company": "acme",
        "argv": ["true"],
        "scheduled_at": NOW,
        "dispatched_at": NOW,
        "timeout": 60,
        "timeout_ack": 30,
        "timeout_result": 10,
    }
    return JobMessage(**(values | fields))
