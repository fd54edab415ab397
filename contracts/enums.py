"""The closed vocabularies every message and record uses."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Where one attempt of a job stands in its lifecycle."""

    WAITING_FOR_PREREQUISITES = "waiting_for_prerequisites"
    DISPATCHED = "dispatched"
    ACKNOWLEDGED = "acknowledged"
    STARTED = "started"
    PROCESSED = "processed"
    ERROR = "error"


class ErrorKind(StrEnum):
    """Why an attempt ended in `error`; also a metric and log label."""

    UNDELIVERED = "undelivered"
    LOST = "lost"
    TIMEOUT = "timeout"
    EXIT = "exit"
    CANCELLED = "cancelled"
    INVALID = "invalid"


class Interval(StrEnum):
    """MultiFlexi's interval codes; `c` means the template's own cron."""

    NONE = "n"
    MINUTELY = "i"
    HOURLY = "h"
    DAILY = "d"
    WEEKLY = "w"
    MONTHLY = "m"
    YEARLY = "y"
    CUSTOM = "c"


INTERVAL_CRON: dict[Interval, str] = {
    Interval.MINUTELY: "* * * * *",
    Interval.HOURLY: "0 * * * *",
    Interval.DAILY: "0 0 * * *",
    Interval.WEEKLY: "0 0 * * 1",
    Interval.MONTHLY: "0 0 1 * *",
    Interval.YEARLY: "0 0 1 1 *",
}
