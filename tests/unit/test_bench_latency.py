"""The latency scenario's stage delays: from one stamp to another, per job."""

from __future__ import annotations

import pytest

from bench.latency import STAGES, delays


def test_delays_count_only_jobs_with_both_stamps() -> None:
    times = {
        "a": {"requested": 10.0, "dispatched": 10.001, "acknowledged": 10.004},
        "b": {"requested": 20.0, "dispatched": 20.002},
        "c": {"requested": 30.0},
    }
    assert delays(times, "requested", "dispatched") == {
        "p50": pytest.approx(1.5),
        "p99": pytest.approx(2.0),
        "max": pytest.approx(2.0),
        "n": 2,
    }
    assert delays(times, "dispatched", "acknowledged") == pytest.approx(
        {"p50": 3, "p99": 3, "max": 3, "n": 1}
    )
    assert delays(times, "acknowledged", "started") == {"n": 0}


def test_the_split_runs_from_the_request_to_the_process_start() -> None:
    split = [(start, end) for label, start, end in STAGES if not label.startswith("run-now → ")]
    split.insert(0, next((s, e) for label, s, e in STAGES if label == "run-now → dispatched"))
    assert [start for start, _ in split] == ["requested", "dispatched", "acknowledged"]
    assert [end for _, end in split] == ["dispatched", "acknowledged", "started"]
