"""The benchmark report: medians and spread over runs, and a readable table."""

from __future__ import annotations

import pytest

from bench import e2e, report
from bench.raw import RawSizes
from bench.report import Metrics


def test_summary_gives_median_and_spread() -> None:
    assert report.summary([90.0, 100.0, 130.0]) == {
        "median": 100.0,
        "min": 90.0,
        "max": 130.0,
        "spread_pct": 40.0,
    }
    assert report.summary([])["median"] is None


def test_finish_adds_machine_versions_and_summaries() -> None:
    metrics = Metrics()
    for value in (1.0, 3.0, 2.0):
        metrics.add("e2e noop", value, "jobs/s", ">= 5,000")
    final = report.finish("e2e", {"parameters": {"jobs": 3}, "metrics": metrics.metrics}, ["e2e"])
    assert final["metrics"]["e2e noop"]["median"] == 2.0
    assert final["machine"]["cpus"] >= 1
    assert final["command"] == "python -m bench e2e"
    table = report.table(final)
    assert "e2e noop" in table and ">= 5,000" in table and "jobs/s  2 " in table


def test_free_form_scenario_results_are_printed_as_they_are() -> None:
    final = report.finish("scheduler", {"lateness_p99_ms": 3.5}, ["scheduler"])
    assert "lateness_p99_ms" in report.table(final)


def test_raw_sizes_scale_down_for_smoke_runs() -> None:
    small = RawSizes().scaled(0.001)
    assert small.messages == 20 and small.spawns == 10 and small.spawn_parallel == 8


def test_e2e_splits_cpu_per_job_by_process_and_says_how_busy_the_machine_was() -> None:
    metrics = Metrics()
    cpu = {"executor": 0.3, "jobs_processes": 0.5, "store": 0.2, "nats": 0.1, "postgres": 0.2, "driver": 0.1}
    machine = {"cores": 2, "busy_cores": 1.9, "other_busy_cores": 0.5, "idle_pct": 5.0, "steal_pct": 0.0}
    result = {
        "jobs": 1000,
        "rate": 1000.0,
        "complete": True,
        "cpu_seconds": cpu,
        "machine_cpu": machine,
        "executor_peak_rss_mb": 60.0,
    }
    e2e._record(metrics, "true", result, 8)
    table = report.table(report.finish("e2e", {"metrics": metrics.metrics}, ["e2e"]))
    per_job = {name: m["median"] for name, m in metrics.metrics.items() if m["unit"] == "µs"}
    assert per_job == pytest.approx(
        {
            "e2e true: executor (own process) CPU per job": 300,
            "e2e true: jobs' processes CPU per job": 500,
            "e2e true: store CPU per job": 200,
            "e2e true: nats CPU per job": 100,
            "e2e true: postgres CPU per job": 200,
            "e2e true: driver CPU per job": 100,
        }
    )
    assert metrics.metrics["e2e true: machine CPU busy"]["unit"] == "cores of 2"
    assert metrics.metrics["e2e true: machine CPU busy, other processes"]["values"] == [0.5]
    assert "e2e true: machine CPU busy" in table and "e2e true: machine CPU idle" in table


def test_e2e_names_a_run_on_several_executors_apart_from_the_goals_one() -> None:
    metrics = Metrics()
    cpu = {"executor": 0.3, "jobs_processes": 0.5, "store": 0.2, "nats": 0.1, "postgres": 0.2, "driver": 0.1}
    result = {
        "jobs": 1000,
        "rate": 600.0,
        "complete": True,
        "cpu_seconds": cpu,
        "machine_cpu": {},
        "executor_peak_rss_mb": 55.0,
        "spawn_beside": 1200.0,
    }
    e2e._record(metrics, "true", result, 8, executors=2)
    e2e.add_ratios(metrics, {"raw": {"spawn_true": [2400.0]}, "true": [result]}, executors=2)
    rate = metrics.metrics["e2e true (2 executors of 4 slots)"]
    assert rate["values"] == [600.0] and not rate["goal"]
    assert metrics.metrics["e2e true (2 executors of 4 slots): executor peak RSS (4 slots)"]["values"] == [
        55.0
    ]
    assert metrics.metrics["e2e true (2 executors) / raw spawn"]["values"] == [50.0]
    assert not any(name.startswith("e2e true:") or name == "e2e true" for name in metrics.metrics)
