"""jetjobs contracts: every message, entity, subject and status rule.

Imports nothing else of the project, so any service (or client) can use it.
"""

from .base import Code, Frozen, JobId
from .enums import INTERVAL_CRON, ErrorKind, Interval, Status
from .messages import DeadLetter, JobEvent, JobMessage
from .models import (
    ActiveTemplate,
    Application,
    Company,
    EnvField,
    RunTemplate,
    TemplateSpec,
    Timeouts,
    cron_for,
)
from .records import AttemptRecord, JobRecord
from .states import FINAL, TRANSITIONS, can_transition

__all__ = [
    "FINAL",
    "INTERVAL_CRON",
    "TRANSITIONS",
    "ActiveTemplate",
    "Application",
    "AttemptRecord",
    "Code",
    "Company",
    "DeadLetter",
    "EnvField",
    "ErrorKind",
    "Frozen",
    "Interval",
    "JobEvent",
    "JobId",
    "JobMessage",
    "JobRecord",
    "RunTemplate",
    "Status",
    "TemplateSpec",
    "Timeouts",
    "can_transition",
    "cron_for",
]
