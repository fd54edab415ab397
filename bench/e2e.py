"""`e2e`: N jobs through the whole system (dispatch → executor → store), measured
until the last outcome is in Postgres, with every status persisted.

Runner `true` spawns a real process per job with its output captured; runner
`noop` does everything but the spawn. CPU per job is given per process, the jobs'
own processes apart from the executor's, with the machine's use over the run, so
that a run's rate can be read against what it cost and what was left idle."""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path
from typing import Any

from bus import Bus
from jetjobs.cli_numbers import count, positive

from . import raw
from .cpu_meter import meter
from .harness import Servers, servers
from .procinfo import peak_rss_mb
from .report import Metrics
from .stack import System, completeness, job_messages, system, wait_final

PUBLISH_BATCH = 1000
CPU_PER_JOB = (
    ("executor", "executor (own process)"),
    ("jobs_processes", "jobs' processes"),
    ("store", "store"),
    ("nats", "nats"),
    ("postgres", "postgres"),
    ("driver", "driver"),
)
"""Key in a run's `cpu_seconds` → name in the metric. The executor's own process only,
its jobs' processes (ended ones included) beside it; the driver publishes and polls."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=count(), default=3000, help="jobs per run with runner true")
    parser.add_argument("--noop-jobs", type=count(), default=10000, help="jobs per run with runner noop")
    parser.add_argument("--slots", type=count(), default=8, help="executor slots with runner true")
    parser.add_argument("--noop-slots", type=count(), default=64, help="executor slots with runner noop")
    parser.add_argument("--runner", choices=["both", "true", "noop"], default="both")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw baselines")
    parser.add_argument(
        "--executor-tmpdir", help="TMPDIR of the executor (where jobs' working directories go)"
    )
    parser.add_argument(
        "--executors",
        type=count(),
        default=1,
        help="executor processes sharing the slots evenly (each runs its jobs from one event loop)",
    )
    parser.add_argument(
        "--raw-fraction", type=positive, default=1.0, help="scale the raw baselines' sizes (smoke tests)"
    )


async def dispatch_all(nats_url: str, count: int, argv: list[str]) -> None:
    """Publish the jobs pipelined, in batches, from the driver process."""
    messages = job_messages(count, argv)
    bus = await Bus.attach(nats_url, "jetjobs-bench")
    try:
        for i in range(0, count, PUBLISH_BATCH):
            await bus.publisher.dispatch(messages[i : i + PUBLISH_BATCH])
    finally:
        await bus.close()


async def one_run(box: Servers, stack: System, count: int, argv: list[str]) -> dict[str, Any]:
    """Time N jobs from the first publish to the last outcome in Postgres."""
    cpu = meter(box, stack)
    cpu.start()
    start = time.time()
    await dispatch_all(stack.nats_url, count, argv)
    published = time.time()
    end = await wait_final(stack.database_url, count, timeout=max(60.0, count / 50))
    used = cpu.stop()
    record = await completeness(stack.database_url)
    return {
        "jobs": count,
        "load_average": os.getloadavg(),
        "rate": count / (end - start),
        "publish_rate": count / (published - start),
        "seconds": end - start,
        "cpu_seconds": used,
        "machine_cpu": cpu.machine,
        "record": record,
        "complete": record.get("jobs_processed") == count and record["events"] == 3 * count,
        "executor_peak_rss_mb": max(peak_rss_mb(e.pid) or 0.0 for e in stack.executors),
    }


def _record(metrics: Metrics, runner: str, result: dict[str, Any], slots: int, executors: int = 1) -> None:
    goal = ">= 5,000" if runner == "noop" else ">= 1,100"
    slots //= executors
    if executors > 1:
        runner, goal = f"{runner} ({executors} executors of {slots} slots)", ""
    metrics.add(f"e2e {runner}", result["rate"], "jobs/s", goal)
    metrics.add(f"e2e {runner}: every status persisted", 1.0 if result["complete"] else 0.0, "1 = yes")
    cpu = result["cpu_seconds"]
    for key, process in CPU_PER_JOB:
        metrics.add(f"e2e {runner}: {process} CPU per job", cpu[key] / result["jobs"] * 1e6, "µs")
    machine = result["machine_cpu"]
    if machine:
        cores = f"cores of {machine['cores']}"
        metrics.add(f"e2e {runner}: machine CPU busy", machine["busy_cores"], cores)
        metrics.add(f"e2e {runner}: machine CPU busy, other processes", machine["other_busy_cores"], cores)
        metrics.add(f"e2e {runner}: machine CPU idle", machine["idle_pct"], "%")
    rss_goal = "< 100" if slots == 8 else ""
    metrics.add(
        f"e2e {runner}: executor peak RSS ({slots} slots)", result["executor_peak_rss_mb"], "MB", rss_goal
    )


def run_runner(box: Servers, args: argparse.Namespace, runner: str, logs: Path) -> list[dict[str, Any]]:
    count = args.noop_jobs if runner == "noop" else args.jobs
    slots = args.noop_slots if runner == "noop" else args.slots
    mode = "noop" if runner == "noop" else "process"
    beside = runner == "true" and not args.no_raw
    sizes = raw.RawSizes().scaled(args.raw_fraction)
    results = []
    for i in range(args.runs):
        tag = f"e2e-{runner}-{i}"
        before = spawn_rate(sizes) if beside else None
        with system(box, mode, slots, logs, tag, args.executor_tmpdir, args.executors) as stack:
            result = asyncio.run(one_run(box, stack, count, ["true"]))
        if before is not None:
            result["spawn_beside"] = (before + spawn_rate(sizes)) / 2
        results.append(result)
    return results


def spawn_rate(sizes: raw.RawSizes) -> float:
    """The raw spawn rate now, with nothing of jetjobs running."""
    return asyncio.run(raw.spawn(sizes))["spawn_true"]


def raw_baselines(box: Servers, metrics: Metrics, runs: int, fraction: float) -> dict[str, list[float]]:
    """The raw limits, `runs` times, with nothing of jetjobs running."""
    values: dict[str, list[float]] = {}
    sizes = raw.RawSizes().scaled(fraction)
    for _ in range(runs):
        box.restart_nats()
        figures = asyncio.run(raw.measure(box.nats.url, box.fresh_database(), sizes))
        for key, value in figures.items():
            label, unit = raw.UNITS[key]
            metrics.add(label, value, unit)
            values.setdefault(key, []).append(value)
    return values


def run(args: argparse.Namespace) -> dict[str, Any]:
    metrics = Metrics()
    runners = ["noop", "true"] if args.runner == "both" else [args.runner]
    for runner in runners:
        slots = args.noop_slots if runner == "noop" else args.slots
        if args.executors < 1 or slots % args.executors:
            raise SystemExit(
                f"python -m bench e2e: error: --executors must divide the {runner} slots ({slots})"
            )
    details: dict[str, Any] = {}
    with servers() as box:
        logs = Path(args.logs)
        logs.mkdir(parents=True, exist_ok=True)
        if not args.no_raw:
            details["raw"] = raw_baselines(box, metrics, args.runs, args.raw_fraction)
        for runner in runners:
            results = run_runner(box, args, runner, logs)
            details[runner] = results
            slots = args.noop_slots if runner == "noop" else args.slots
            for result in results:
                _record(metrics, runner, result, slots, args.executors)
    add_ratios(metrics, details, args.executors)
    names = ("jobs", "noop_jobs", "slots", "noop_slots", "runner", "runs", "executor_tmpdir", "executors")
    params: dict[str, Any] = {k: getattr(args, k) for k in names}
    params["service_log_level"] = "warning"
    return {"parameters": params, "metrics": metrics.metrics, "runs": details}


def add_ratios(metrics: Metrics, details: dict[str, Any], executors: int = 1) -> None:
    """e2e true against the raw spawn rate taken beside each run (goal: at least 70 %,
    for one executor against the one process of the raw spawn)."""
    label, goal = (
        ("e2e true / raw spawn", ">= 70")
        if executors == 1
        else (f"e2e true ({executors} executors) / raw spawn", "")
    )
    for result in details.get("true", []):
        if "spawn_beside" in result:
            name, unit = raw.BESIDE
            metrics.add(name, result["spawn_beside"], unit)
            metrics.add(label, result["rate"] / result["spawn_beside"] * 100, "%", goal)
