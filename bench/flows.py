"""`flows`: a 1,000-node flow of `noop` (or `true`) jobs, wide and deep.

Measures the orchestration overhead per node: from the moment its last
prerequisite's outcome is recorded (the job's end) to the dependant's dispatch
(the dispatched_at the orchestrator stamps), p50 and p99, plus the whole
flow's wall time."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import asyncpg

from bus import ApiClient, Bus
from contracts import api
from contracts.flows import FlowRef, FlowRun, FlowRunRequest, FlowSpec, FlowStatus
from contracts.models import Company
from jetjobs.cli_numbers import count

from .harness import Servers, servers
from .report import Metrics
from .stack import system

LAG_SQL = """
SELECT EXTRACT(EPOCH FROM (d.dispatched_at - max(u.end_at))) AS lag
FROM flow_run r,
     jsonb_array_elements(r.spec -> 'nodes') spec_node,
     jsonb_array_elements(spec_node -> 'depends') edge,
     flow_node dn JOIN job d ON d.id = dn.job_id,
     flow_node un JOIN job u ON u.id = un.job_id
WHERE r.id = $1 AND dn.run_id = r.id AND spec_node ->> 'name' = dn.node
  AND un.run_id = r.id AND un.node = edge ->> 'node'
GROUP BY d.id, d.dispatched_at
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=count(3), default=1000, help="nodes per flow")
    parser.add_argument("--shape", choices=["both", "wide", "deep"], default="both")
    parser.add_argument("--runner", choices=["noop", "true"], default="noop")
    parser.add_argument("--slots", type=count(), default=64)


def shape(kind: str, count: int, app: str) -> FlowSpec:
    """`deep`: a chain; `wide`: one root, count-2 parallel nodes, one sink."""
    if kind == "deep":
        edges = [[f"n{i - 1}"] if i else [] for i in range(count)]
    else:
        middle = [f"n{i}" for i in range(1, count - 1)]
        edges = [[]] + [["n0"]] * (count - 2) + [middle]
    nodes = [{"name": f"n{i}", "app": app, "depends": deps} for i, deps in enumerate(edges)]
    return FlowSpec.model_validate({"name": f"bench-{kind}", "company": "bench", "nodes": nodes})


async def one_flow(nats_url: str, database_url: str, kind: str, count: int) -> dict[str, Any]:
    bus = await Bus.attach(nats_url, "jetjobs-bench")
    client = ApiClient(bus.nc, timeout=60)
    try:
        await client.call("company.create", Company(code="bench", name="bench"), Company)
        document = {"name": "true", "executable": "true"}
        app = await client.call("app.import", api.AppImport(document=document), api.AppImported)
        start = time.time()
        run = await client.call("flow.run", FlowRunRequest(spec=shape(kind, count, app.app.uuid)), FlowRun)
        while run.status is FlowStatus.STARTED:
            await asyncio.sleep(0.2)
            run = await client.call("flow.get", FlowRef(id=run.id), FlowRun)
        wall = time.time() - start
    finally:
        await bus.close()
    conn = await asyncpg.connect(database_url)
    try:
        lags = sorted(float(r["lag"]) for r in await conn.fetch(LAG_SQL, run.id))
    finally:
        await conn.close()
    return {"status": run.status.value, "wall": wall, "lags": lags}


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    metrics = Metrics()
    kinds = ["wide", "deep"] if args.shape == "both" else [args.shape]
    details: dict[str, Any] = {}
    with servers() as box:
        logs = Path(args.logs)
        logs.mkdir(parents=True, exist_ok=True)
        for kind in kinds:
            for i in range(args.runs):
                details.setdefault(kind, []).append(_measure(box, args, kind, logs, i, metrics))
    params = {k: getattr(args, k) for k in ("nodes", "shape", "runner", "slots", "runs")}
    return {"parameters": params, "metrics": metrics.metrics, "runs": details}


def _measure(
    box: Servers, args: argparse.Namespace, kind: str, logs: Path, i: int, metrics: Metrics
) -> dict[str, Any]:
    with system(box, args.runner, args.slots, logs, f"flows-{kind}-{i}") as stack:
        result = asyncio.run(one_flow(stack.nats_url, stack.database_url, kind, args.nodes))
    lags = result.pop("lags")
    metrics.add(f"{kind}_lag_p50_ms", _ms(_quantile(lags, 0.5)), "ms", "prerequisite outcome → dispatch")
    metrics.add(f"{kind}_lag_p99_ms", _ms(_quantile(lags, 0.99)), "ms")
    metrics.add(f"{kind}_wall_s", result["wall"], "s")
    metrics.add(f"{kind}_finished", 1.0 if result["status"] == FlowStatus.FINISHED.value else 0.0, "1 = yes")
    result["edges_measured"] = len(lags)
    result["mean_lag_ms"] = _ms(statistics.fmean(lags)) if lags else None
    return result


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)
