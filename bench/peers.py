"""`peers`: the `e2e` and `latency` workloads on Celery (Redis broker and results,
prefork, concurrency = cores) and on jetjobs, in the same run, with ratios.

Celery is skipped, saying why, when `redis-server` or the celery package is missing."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jetjobs.cli_numbers import count, positive
from jetjobs.embedded import free_port

from . import e2e, latency
from .harness import Servers, servers
from .report import Metrics
from .stack import system

READY_TIMEOUT = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--jobs", type=count(), default=2000, help="jobs per e2e run, for each system and runner"
    )
    parser.add_argument("--rate", type=positive, default=50.0, help="latency: requests per second")
    parser.add_argument("--seconds", type=positive, default=5.0, help="latency: how long")
    parser.add_argument("--slots", type=count(), default=8, help="jetjobs executor slots")


def why_no_celery() -> str | None:
    """Why Celery cannot run here, or None."""
    if shutil.which("redis-server") is None:
        return "redis-server not found on PATH (Debian: apt-get install redis-server)"
    if importlib.util.find_spec("celery") is None or importlib.util.find_spec("redis") is None:
        return "celery/redis packages missing (pip install -e '.[bench]')"
    return None


def _stop(process: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_port(port: int, process: subprocess.Popen[bytes]) -> None:
    import socket

    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


@contextlib.contextmanager
def celery_stack(logs: Path) -> Iterator[Any]:
    """redis-server on a free port and a prefork worker; yields the client app."""
    from .celery_peer import make_app

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="jetjobs-bench-redis-") as tmp:
        redis = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tmp,
            ],
            stdout=(logs / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        worker = None
        try:
            _wait_port(port, redis)
            url = f"redis://127.0.0.1:{port}"
            worker = subprocess.Popen(
                [sys.executable, "-m", "bench.celery_peer", url, str(os.cpu_count() or 1)],
                stdout=(logs / "celery.log").open("ab"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            app = make_app(url)
            app.send_task("bench.noop").get(timeout=READY_TIMEOUT)
            yield app
        finally:
            if worker is not None:
                _stop(worker)
            _stop(redis)


def celery_e2e(app: Any, task: str, count: int) -> float:
    """Send `count` tasks, wait until every result is stored; tasks per second."""
    from celery.result import ResultSet

    start = time.time()
    results = ResultSet([app.send_task(task) for _ in range(count)])
    results.join_native(timeout=600, propagate=True)
    return count / (time.time() - start)


def celery_latency(app: Any, rate: float, seconds: float) -> dict[str, float]:
    """Send → process start at a fixed rate, with `true` run per task."""
    sent = []
    start = time.monotonic()
    for i in range(int(rate * seconds)):
        time.sleep(max(0.0, start + i / rate - time.monotonic()))
        at = time.time()
        sent.append((at, app.send_task("bench.true")))
    delays = [(result.get(timeout=120) - at) * 1000 for at, result in sent]
    return {"p50": statistics.median(delays), "p99": latency.percentile(delays, 99), "max": max(delays)}


def jetjobs_round(
    box: Servers, args: argparse.Namespace, logs: Path, i: int, per_core: int | None
) -> dict[str, float]:
    """One round of the jetjobs side: e2e noop, e2e true (one executor, then, unless
    `per_core` is None, that many sharing the same slots, as Celery runs one worker
    process per core), latency."""
    out = {}
    rounds = [("noop", "noop", 64, 1), ("true", "process", args.slots, 1)]
    if per_core is not None:
        rounds.append(("true_per_core", "process", args.slots, per_core))
    for runner, mode, slots, executors in rounds:
        with system(box, mode, slots, logs, f"peers-{runner}-{i}", executors=executors) as stack:
            out[runner] = asyncio.run(e2e.one_run(box, stack, args.jobs, ["true"]))["rate"]
    with system(box, "process", args.slots, logs, f"peers-latency-{i}") as stack:
        out["p99"] = asyncio.run(latency.one_run(stack, args.rate, args.seconds))["run-now → process start"][
            "p99"
        ]
    return out


def celery_round(app: Any, args: argparse.Namespace) -> dict[str, float]:
    """The same round on Celery."""
    out = {
        runner: celery_e2e(app, task, args.jobs)
        for runner, task in (("noop", "bench.noop"), ("true", "bench.true"))
    }
    out["p99"] = celery_latency(app, args.rate, args.seconds)["p99"]
    return out


def record(metrics: Metrics, ours: dict[str, float], theirs: dict[str, float] | None) -> None:
    metrics.add("jetjobs e2e noop", ours["noop"], "jobs/s")
    metrics.add("jetjobs e2e true", ours["true"], "jobs/s")
    per_core = ours.get("true_per_core")
    if per_core is not None:
        metrics.add("jetjobs e2e true, one executor per core", per_core, "jobs/s")
    metrics.add("jetjobs run-now → process start p99", ours["p99"], "ms")
    if theirs is None:
        return
    metrics.add("celery e2e noop", theirs["noop"], "tasks/s")
    metrics.add("celery e2e true", theirs["true"], "tasks/s")
    metrics.add("celery send → process start p99", theirs["p99"], "ms")
    metrics.add("ratio e2e noop: jetjobs / celery", ours["noop"] / theirs["noop"], "x")
    metrics.add("ratio e2e true: jetjobs / celery", ours["true"] / theirs["true"], "x", ">= 2")
    if per_core is not None:
        metrics.add("ratio e2e true, one executor per core: jetjobs / celery", per_core / theirs["true"], "x")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Rounds alternate between the two systems, so both see the same machine."""
    latency.check_requests("peers", args.rate, args.seconds)
    metrics = Metrics()
    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    skipped = why_no_celery()
    notes = [] if skipped is None else [f"celery skipped: {skipped}"]
    cores = os.cpu_count() or 1
    per_core = None if args.slots % cores else cores
    if per_core is None:
        notes.append(
            f"jetjobs with one executor per core skipped: {cores} cores do not share {args.slots} slots evenly"
        )
    for note in notes:
        print(f"peers: {note}", file=sys.stderr)
    with servers() as box, celery_stack(logs) if skipped is None else contextlib.nullcontext() as app:
        for i in range(args.runs):
            ours = jetjobs_round(box, args, logs, i, per_core)
            record(metrics, ours, None if app is None else celery_round(app, args))
    params: dict[str, Any] = {k: getattr(args, k) for k in ("jobs", "rate", "seconds", "slots", "runs")}
    params["celery_concurrency"] = cores
    return {"parameters": params, "metrics": metrics.metrics, "notes": notes}
