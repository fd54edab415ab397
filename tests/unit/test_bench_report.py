"""The benchmark report: medians and spread over runs, and a readable table."""

from __future__ import annotations

from bench import report
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
