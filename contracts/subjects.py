"""The public subject contract: streams, subjects, buckets, consumers."""

from __future__ import annotations

DISPATCH_STREAM = "JETJOBS_DISPATCH"
EVENTS_STREAM = "JETJOBS_EVENTS"
LOGS_STREAM = "JETJOBS_LOGS"
DEAD_STREAM = "JETJOBS_DEAD"

DISPATCH_ALL = "jetjobs.dispatch.>"
EVENTS_ALL = "jetjobs.events.>"
LOGS_ALL = "jetjobs.logs.>"
DEAD_ALL = "jetjobs.dead.>"

TEMPLATES_BUCKET = "jetjobs_templates"
LEASES_BUCKET = "jetjobs_leases"

API_PREFIX = "jetjobs.api"
API_SERVICE = "jetjobs-api"

STORE_DISPATCH_CONSUMER = "store_dispatch"
STORE_EVENTS_CONSUMER = "store_events"
STORE_DEAD_CONSUMER = "store_dead"


def dispatch_subject(company: str, pool: str) -> str:
    """Where job messages for a company's pool are published."""
    return f"jetjobs.dispatch.{company}.{pool}"


def pool_filter(pool: str) -> str:
    """The subject filter of a pool's shared executor consumer."""
    return f"jetjobs.dispatch.*.{pool}"


def pool_consumer(pool: str) -> str:
    """The durable consumer all executors of a pool share."""
    return f"exec_{pool}"


def events_subject(company: str, job_id: str) -> str:
    """Where a job's lifecycle events are published."""
    return f"jetjobs.events.{company}.{job_id}"


def events_filter(company: str = "*") -> str:
    """Events of one company (or all)."""
    return f"jetjobs.events.{company}.*"


def logs_subject(company: str, job_id: str) -> str:
    """Where a job's output chunks are published."""
    return f"jetjobs.logs.{company}.{job_id}"


def dead_subject(company: str) -> str:
    """Where a company's dead letters go."""
    return f"jetjobs.dead.{company}"


def api_subject(operation: str) -> str:
    """The request subject of one store API operation, e.g. `job.get`."""
    return f"{API_PREFIX}.{operation}"


def template_key(template_id: int) -> str:
    """The templates KV key of one template."""
    return f"t.{template_id}"
