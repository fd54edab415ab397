"""The public subject contract: streams, subjects, buckets, consumers."""

from __future__ import annotations

DISPATCH_STREAM = "JETJOBS_DISPATCH"
EVENTS_STREAM = "JETJOBS_EVENTS"
LOGS_STREAM = "JETJOBS_LOGS"
DEAD_STREAM = "JETJOBS_DEAD"
SLOTS_STREAM = "JETJOBS_SLOTS"

DISPATCH_ALL = "jetjobs.dispatch.>"
EVENTS_ALL = "jetjobs.events.>"
LOGS_ALL = "jetjobs.logs.>"
DEAD_ALL = "jetjobs.dead.>"
SLOTS_ALL = "jetjobs.slots.>"
SLOTS_OF_SCHEDULERS = "jetjobs.slots.*.*.scheduler"

TEMPLATES_BUCKET = "jetjobs_templates"
LEASES_BUCKET = "jetjobs_leases"
RUNNERS_BUCKET = "jetjobs_runners"
CANCELS_BUCKET = "jetjobs_cancels"

API_PREFIX = "jetjobs.api"
API_SERVICE = "jetjobs-api"

STORE_DISPATCH_CONSUMER = "store_dispatch"
STORE_EVENTS_CONSUMER = "store_events"
STORE_DEAD_CONSUMER = "store_dead"
STORE_SLOTS_CONSUMER = "store_slots"

SCHEDULER_LEASE_KEY = "scheduler"
"""The key of the one scheduler lease in `jetjobs_leases`."""


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


def runner_key(pool: str, runner_id: str) -> str:
    """The runners KV key of one executor (KV keys allow `-_=./` and alphanumerics)."""
    safe = "".join(c if c.isalnum() or c in "-_=" else "_" for c in runner_id)
    return f"{pool}.{safe}"


def dispatch_msg_id(job_id: str, attempt: int) -> str:
    """The dedup id of a job message: a replay (attempt > 1) must not be dropped as a copy."""
    return job_id if attempt <= 1 else f"{job_id}.a{attempt}"


def slots_subject(company: str, template_id: int, source: str = "scheduler") -> str:
    """Where slot records go; `source` is `scheduler` (its records carry the misfire
    anchor) or `backfill`."""
    return f"jetjobs.slots.{company}.{template_id}.{source}"


def template_key(template_id: int) -> str:
    """The templates KV key of one template."""
    return f"t.{template_id}"
