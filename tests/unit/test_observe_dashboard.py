"""The Grafana dashboard and the alert rules use only metrics the services expose."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bus import Layout
from bus.telemetry import Telemetry
from executor import ExecutorConfig, ExecutorService
from scheduler import SchedulerConfig, SchedulerService
from scheduler.metrics import SchedulerMetrics
from store import StoreConfig, StoreService

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRIC = re.compile(r"\bjetjobs_[a-z0-9_]+")
SUFFIXES = {
    "counter": ["_total"],
    "histogram": ["_bucket", "_count", "_sum"],
    "gauge": [""],
    "info": ["_info"],
}


def exposed() -> set[str]:
    """Every sample name the three services register (what /metrics can show)."""
    telemetry = Telemetry()
    ExecutorService(ExecutorConfig(nats_url="nats://127.0.0.1:1"), Layout(), telemetry)
    StoreService(
        StoreConfig(nats_url="nats://127.0.0.1:1", database_url="postgresql://h/db"), Layout(), telemetry
    )
    SchedulerService(
        SchedulerConfig(nats_url="nats://127.0.0.1:1"), Layout(), SchedulerMetrics(telemetry.registry)
    )
    telemetry.watch_bus("scheduler", lambda: None)
    return {
        family.name + suffix
        for family in telemetry.registry.collect()
        for suffix in SUFFIXES.get(family.type, [""])
    }


def dashboard_exprs() -> list[str]:
    board = json.loads((DEPLOY / "grafana" / "jetjobs.json").read_text())
    return [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]


def alert_exprs() -> list[str]:
    """The rules file's text without comments (promtool checks its structure)."""
    lines = (DEPLOY / "prometheus" / "alerts.yml").read_text().splitlines()
    return [line for line in lines if not line.lstrip().startswith("#")]


def test_dashboard_references_only_exposed_metrics() -> None:
    names = exposed()
    used = {name for expr in dashboard_exprs() for name in METRIC.findall(expr)}
    assert used, "the dashboard queries no jetjobs metric"
    assert used - names == set(), f"dashboard uses metrics no service exposes: {sorted(used - names)}"


def test_dashboard_covers_what_operators_watch() -> None:
    used = {name for expr in dashboard_exprs() for name in METRIC.findall(expr)}
    for needed in (
        "jetjobs_executor_jobs_finished_total",  # throughput, outcomes
        "jetjobs_store_job_outcomes_total",
        "jetjobs_executor_dispatch_lag_seconds_bucket",  # lag
        "jetjobs_executor_running_jobs",  # running vs slots
        "jetjobs_executor_slots",
        "jetjobs_store_dead_letters_total",  # DLQ
        "jetjobs_store_pending_messages",  # store lag
        "jetjobs_scheduler_fire_lateness_seconds_bucket",  # scheduler lateness
        "jetjobs_pool_waiting_jobs",  # jobs waiting per pool
    ):
        assert needed in used, needed


def test_alert_rules_reference_only_exposed_metrics() -> None:
    names = exposed() | {"up"}
    used = {name for expr in alert_exprs() for name in METRIC.findall(expr)}
    assert used - names == set(), f"alerts use metrics no service exposes: {sorted(used - names)}"


def test_metric_names_carry_units_and_prefix() -> None:
    for name in exposed():
        assert name.startswith("jetjobs_"), name
        if any(word in name for word in ("_lag_", "_lateness_", "_run_", "_batch_", "timestamp")):
            assert "_seconds" in name, f"{name}: time metrics name their unit"
