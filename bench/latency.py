"""`latency`: run-now → acknowledged → process start → outcome recorded, p50/p99/max,
at a fixed rate (default 50 jobs/s for 10 s) of real `true` processes, and where
the run-now → process start time goes: run-now → dispatched → acknowledged →
process start.

Every stage is a wall-clock time on this one machine: the request is stamped by
the driver, `dispatched` by the store as it publishes the job (the job's
`dispatched_at`), `acknowledged` and process start by the executor's events, the
outcome by the store's `recorded_at` in Postgres."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from bus import ApiClient, Bus
from contracts import api
from contracts.models import Company, RunTemplate, TemplateSpec
from jetjobs.cli_numbers import count, positive

from .harness import servers
from .report import Metrics
from .stack import System, system, wait_final

STAGES = (
    ("run-now → acknowledged", "requested", "acknowledged"),
    ("run-now → process start", "requested", "started"),
    ("run-now → outcome recorded", "requested", "recorded"),
    ("run-now → dispatched", "requested", "dispatched"),
    ("dispatched → acknowledged", "dispatched", "acknowledged"),
    ("acknowledged → process start", "acknowledged", "started"),
)
"""Label, from, to. The last three split run-now → process start: the store's part
(its lookups, up to publishing the job), the bus's delivery and the executor
taking the job, then the executor's work before the spawn and the spawn itself."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=positive, default=50.0, help="run-now requests per second")
    parser.add_argument("--seconds", type=positive, default=10.0, help="how long to send them")
    parser.add_argument("--slots", type=count(), default=8)


async def bench_template(client: ApiClient) -> int:
    """A company, an application running `true`, and a manual template."""
    await client.call("company.create", Company(code="bench", name="bench"), Company)
    document = {"name": "true", "executable": "true", "cmdparams": "", "environment": {}}
    imported = await client.call("app.import", api.AppImport(document=document), api.AppImported)
    spec = TemplateSpec.model_validate(
        {"name": "latency", "app": imported.app.uuid, "company": "bench", "interv": "n"}
    )
    return (await client.call("template.create", spec, RunTemplate)).id


async def paced_requests(client: ApiClient, template: int, rate: float, seconds: float) -> dict[str, float]:
    """Send run-now at a fixed pace (each on its own task, so a slow reply never delays the next)."""
    sent: dict[str, float] = {}
    request = api.RunNow(id=template, launched_by="bench")

    async def one() -> None:
        at = time.time()
        queued = await client.call("template.run", request, api.JobQueued)
        sent[queued.job_id] = at

    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    return sent


async def stage_times(database_url: str) -> dict[str, dict[str, float]]:
    """Per job: when it was dispatched, acknowledged, its process started, and its
    outcome was recorded."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT job_id, status::text, payload, extract(epoch FROM recorded_at) AS recorded FROM job_event"
        )
        jobs = await conn.fetch("SELECT id, extract(epoch FROM dispatched_at) AS dispatched FROM job")
    finally:
        await conn.close()
    times: dict[str, dict[str, float]] = {
        job["id"]: {"dispatched": float(job["dispatched"])} for job in jobs if job["dispatched"] is not None
    }
    for row in rows:
        payload = json.loads(row["payload"])
        stages = times.setdefault(row["job_id"], {})
        if row["status"] == "acknowledged":
            stages["acknowledged"] = _epoch(payload["at"])
        elif row["status"] == "started":
            stages["started"] = _epoch(payload.get("begin") or payload["at"])
        else:
            stages["recorded"] = float(row["recorded"])
    return times


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def delays(times: dict[str, dict[str, float]], start: str, end: str) -> dict[str, float]:
    """p50, p99 and max of `end` - `start` in ms, over the jobs that have both, and how many."""
    ms = [(t[end] - t[start]) * 1000 for t in times.values() if start in t and end in t]
    if not ms:
        return {"n": 0}
    return {"p50": statistics.median(ms), "p99": percentile(ms, 99), "max": max(ms), "n": len(ms)}


async def one_run(stack: System, rate: float, seconds: float) -> dict[str, dict[str, float]]:
    bus = await Bus.attach(stack.nats_url, "jetjobs-bench")
    try:
        client = ApiClient(bus.nc)
        template = await bench_template(client)
        sent = await paced_requests(client, template, rate, seconds)
    finally:
        await bus.close()
    await wait_final(stack.database_url, len(sent), timeout=60 + seconds)
    recorded = await stage_times(stack.database_url)
    times = {job: recorded.get(job, {}) | {"requested": at} for job, at in sent.items()}
    return {label: delays(times, start, end) for label, start, end in STAGES}


def check_requests(scenario: str, rate: float, seconds: float) -> None:
    """Exit with a usage error when `rate` for `seconds` sends no request at all."""
    if int(rate * seconds) < 1:
        raise SystemExit(
            f"python -m bench {scenario}: error: --rate {rate:g} for --seconds {seconds:g} "
            "sends no request: raise either so that their product is at least 1"
        )


def run(args: argparse.Namespace) -> dict[str, Any]:
    check_requests("latency", args.rate, args.seconds)
    metrics = Metrics()
    runs = []
    with servers() as box:
        logs = Path(args.logs)
        logs.mkdir(parents=True, exist_ok=True)
        for i in range(args.runs):
            with system(box, "process", args.slots, logs, f"latency-{i}") as stack:
                result = asyncio.run(one_run(stack, args.rate, args.seconds))
            runs.append(result)
            for label, figures in result.items():
                for stat in ("p50", "p99", "max"):
                    goal = "<= 5" if label == "run-now → process start" and stat == "p99" else ""
                    metrics.add(f"{label} {stat}", figures.get(stat), "ms", goal)
    params = {"rate": args.rate, "seconds": args.seconds, "slots": args.slots, "runs": args.runs}
    return {"parameters": params, "metrics": metrics.metrics, "runs": runs}
