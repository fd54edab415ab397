"""The scheduler's Prometheus metrics: leadership, templates, how late slots fire,
and when each template last fired."""

from __future__ import annotations

import contextlib
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class SchedulerMetrics:
    """Gauges and histograms of one scheduler, in the registry it is given."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._leader = Gauge(
            "jetjobs_scheduler_leader", "1 while this scheduler holds the lease", registry=self.registry
        )
        self._alive = Gauge(
            "jetjobs_scheduler_heartbeat_timestamp_seconds",
            "when the scheduler's loop last ran (liveness)",
            registry=self.registry,
        )
        self._templates = Gauge(
            "jetjobs_scheduler_templates", "templates the scheduler follows", registry=self.registry
        )
        self._last_fired = Gauge(
            "jetjobs_scheduler_last_fired_timestamp_seconds",
            "when each template last fired (its slot)",
            ["template"],
            registry=self.registry,
        )
        self._lateness = Histogram(
            "jetjobs_scheduler_fire_lateness_seconds",
            "from a slot's scheduled time to its message being written to NATS",
            buckets=LATENESS_BUCKETS,
            registry=self.registry,
        )
        self._slots = Counter(
            "jetjobs_scheduler_slots", "slots settled, by outcome", ["outcome"], registry=self.registry
        )

    def leading(self, value: bool) -> None:
        self._leader.set(1.0 if value else 0.0)

    def alive(self, now: datetime) -> None:
        self._alive.set(now.timestamp())

    def templates(self, count: int) -> None:
        self._templates.set(count)

    def fired(self, template_id: int, slot: datetime, lateness: float) -> None:
        self._last_fired.labels(template=str(template_id)).set(slot.timestamp())
        self._lateness.observe(max(lateness, 0.0))

    def slot(self, outcome: str) -> None:
        self._slots.labels(outcome=outcome).inc()

    def forget(self, template_id: int) -> None:
        """A removed template's series goes away with it."""
        with contextlib.suppress(KeyError):
            self._last_fired.remove(str(template_id))
