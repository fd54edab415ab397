"""Every benchmark scenario runs end to end at a tiny size, so the harness cannot rot.

These check that the scenarios work and the record is complete, never how fast
anything is: performance goals live in `bench/`, not in tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.processes import alive, below

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[2]


def bench(tmp_path: Path, *argv: str) -> dict[str, Any]:
    out = tmp_path / "report.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            *argv,
            "--runs",
            "1",
            "--out",
            str(out),
            "--logs",
            str(tmp_path / "logs"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "median" in done.stdout
    report: dict[str, Any] = json.loads(out.read_text())
    assert report["machine"]["cpus"] >= 1
    assert report["versions"]["nats-py"]
    return report


def values(report: dict[str, Any], name: str) -> list[float]:
    return list(report["metrics"][name]["values"])


def test_e2e_runs_both_runners_with_every_status_persisted(tmp_path: Path) -> None:
    report = bench(tmp_path, "e2e", "--jobs", "20", "--noop-jobs", "50", "--raw-fraction", "0.01")
    assert values(report, "e2e noop: every status persisted") == [1.0]
    assert values(report, "e2e true: every status persisted") == [1.0]
    assert values(report, "raw spawn /bin/true with pipes, 8-way")[0] > 0
    beside = values(report, "raw spawn /bin/true with pipes, 8-way, beside each e2e true run")
    assert beside[0] > 0
    assert values(report, "e2e true / raw spawn") == [report["runs"]["true"][0]["rate"] / beside[0] * 100]
    assert report["metrics"]["e2e noop"]["median"] > 0
    assert values(report, "e2e true: jobs' processes CPU per job")[0] >= 0
    assert values(report, "e2e true: executor (own process) CPU per job")[0] > 0
    run = report["runs"]["true"][0]
    assert set(run["cpu_seconds"]) >= {"executor", "jobs_processes", "store", "nats", "postgres", "driver"}
    assert 0 < run["machine_cpu"]["busy_cores"] <= run["machine_cpu"]["cores"]


def test_output_carries_every_line_to_the_live_log(tmp_path: Path) -> None:
    report = bench(tmp_path, "output", "--jobs", "2", "--lines", "200", "--rate", "1000")
    assert values(report, "output: every line in the live log, in order") == [1.0]
    assert 0 < values(report, "output: log messages per 1,000 lines")[0] <= 1000
    assert values(report, "output: executor CPU per line")[0] > 0


def test_latency_reports_every_stage(tmp_path: Path) -> None:
    report = bench(tmp_path, "latency", "--rate", "20", "--seconds", "0.5")
    for stage in ("acknowledged", "process start", "outcome recorded"):
        assert values(report, f"run-now → {stage} p99")[0] > 0
    for split in ("run-now → dispatched", "dispatched → acknowledged", "acknowledged → process start"):
        assert values(report, f"{split} p99")[0] > 0


def test_store_ingests_the_whole_backlog(tmp_path: Path) -> None:
    report = bench(tmp_path, "store", "--jobs", "50")
    assert values(report, "store: every status persisted") == [1.0]
    assert values(report, "store: events ingested")[0] > 0


def test_two_stores_share_the_backlog(tmp_path: Path) -> None:
    report = bench(tmp_path, "store", "--jobs", "50", "--stores", "2")
    assert values(report, "2 stores: every status persisted") == [1.0]
    assert values(report, "2 stores: events ingested")[0] > 0


def test_peers_compares_with_celery_or_says_why_not(tmp_path: Path) -> None:
    report = bench(tmp_path, "peers", "--jobs", "20", "--rate", "20", "--seconds", "0.5")
    assert values(report, "jetjobs e2e true")[0] > 0
    if 8 % (os.cpu_count() or 1) == 0:  # the default 8 slots shared evenly by one executor per core
        assert values(report, "jetjobs e2e true, one executor per core")[0] > 0
    else:
        assert any(
            note.startswith("jetjobs with one executor per core skipped: ") for note in report["notes"]
        )
    if not any(note.startswith("celery skipped: ") for note in report["notes"]):
        assert values(report, "ratio e2e true: jetjobs / celery")[0] > 0


def test_scheduler_fires_every_slot_and_loads_in_a_fresh_process(tmp_path: Path) -> None:
    report = bench(tmp_path, "scheduler", "--templates", "20", "--seconds", "2", "--scale", "500")
    assert values(report, "slots fired")[0] >= 20
    assert values(report, "fire lateness p99")[0] >= 0
    assert values(report, "scheduler RSS growth after load")[0] > 0
    assert values(report, "one change reaches the plan")[0] > 0


def test_flows_runs_both_shapes_to_the_end(tmp_path: Path) -> None:
    report = bench(tmp_path, "flows", "--nodes", "12")
    for shape in ("wide", "deep"):
        assert values(report, f"{shape}_finished") == [1.0]
        assert report["runs"][shape][0]["edges_measured"] == 11  # every node after the first
        assert values(report, f"{shape}_wall_s")[0] > 0
        assert 0 <= values(report, f"{shape}_lag_p50_ms")[0] <= values(report, f"{shape}_lag_p99_ms")[0]


@pytest.mark.timeout(240)
def test_ctrl_c_stops_every_server_and_service_and_says_so(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "bench", "e2e", "--runner", "noop", "--noop-jobs", "1000000", "--no-raw"]
    argv += ["--runs", "1", "--out", str(tmp_path / "report.json"), "--logs", str(tmp_path / "logs")]
    run = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 90
        while not any("bench.service executor" in line for line in started.values()):
            assert time.monotonic() < deadline and run.poll() is None, "the executor never started"
            time.sleep(0.2)
            started = below(run.pid)
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=120)  # each service gets 15 s to stop, a slow machine needs them
        assert run.returncode == 130, err[-3000:]
        assert "python -m bench e2e: interrupted; no report written" in err
        assert "Traceback" not in err
        assert not (tmp_path / "report.json").exists()
        assert [line for pid, line in started.items() if alive(pid)] == []
    finally:
        for pid in [run.pid, *started]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        run.communicate()
