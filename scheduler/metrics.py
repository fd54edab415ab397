"""The scheduler's Prometheus metrics: leadership, templates, how late slots fire,
and when the leader last fired one. Nothing is labelled by template: 100,000
templates would be as many series (`jetjobs template explain ID` tells one template's)."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

OUTCOMES = ("fired", "late", "skipped")
"""How a slot is settled (`slot`)."""

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
        self._refused = Gauge(
            "jetjobs_scheduler_templates_refused",
            "templates on the board this scheduler cannot schedule "
            "(each logged as schedule.invalid_template or templates.invalid)",
            registry=self.registry,
        )
        self._last_fired = Gauge(
            "jetjobs_scheduler_last_fired_timestamp_seconds",
            "the latest slot this scheduler fired while it leads; 0 when it does not lead",
            registry=self.registry,
        )
        self._latest = 0.0
        self._leads = False
        self._lateness = Histogram(
            "jetjobs_scheduler_fire_lateness_seconds",
            "from a slot's scheduled time to its message being written to NATS",
            buckets=LATENESS_BUCKETS,
            registry=self.registry,
        )
        self._clock_offset = Gauge(
            "jetjobs_scheduler_clock_offset_seconds",
            "how far this host's clock is ahead of the NATS server's (negative: behind), "
            "as last measured from a lease renewal",
            registry=self.registry,
        )
        self._slots = Counter(
            "jetjobs_scheduler_slots", "slots settled, by outcome", ["outcome"], registry=self.registry
        )
        for outcome in OUTCOMES:
            self._slots.labels(outcome=outcome)

    def clock_offset(self, seconds: float) -> None:
        """This host's clock against the NATS server's, as `bus.clock` measured it."""
        self._clock_offset.set(seconds)

    def leading(self, value: bool) -> None:
        """A former leader's last fire is no one's: it reads 0 until it leads and fires again."""
        self._leader.set(1.0 if value else 0.0)
        self._leads = value
        if not value:
            self._latest = 0.0
            self._last_fired.set(0.0)

    def alive(self, now: datetime) -> None:
        self._alive.set(now.timestamp())

    def templates(self, count: int, refused: int) -> None:
        self._templates.set(count)
        self._refused.set(refused)

    def fired(self, slot: datetime, lateness: float) -> None:
        """A slot fired; one owed from earlier (a misfire caught up) does not move the last
        fire back, and one settled after stepping down does not bring it back."""
        if self._leads:
            self._latest = max(self._latest, slot.timestamp())
            self._last_fired.set(self._latest)
        self._lateness.observe(max(lateness, 0.0))

    def slot(self, outcome: str) -> None:
        self._slots.labels(outcome=outcome).inc()
