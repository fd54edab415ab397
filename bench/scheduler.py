"""`scheduler`: firing precision (lateness of publish after the due instant, p50/p99/max,
with --templates templates firing every second for --seconds) and scale (--scale
templates: load time, RSS growth, time for one change to reach the plan).

Lateness is taken per message as the scheduler hands it to the connection (the
slot records carry it). Beside it, in the same run: the floor of this machine
right now (a bare timer at each whole second handing off as many ready-made
messages, no scheduler) and the polling design this replaces, which evaluated
templates on a 10 s cycle (a slot up to 10 s late, 5 s on average). Goal: p99 < 20 ms."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bus import Bus, TemplateBoard
from bus.handoff import Handoff
from contracts import subjects as s
from contracts.dispatch import job_message, scheduled_job_id
from contracts.models import ActiveTemplate
from contracts.schedule import Overlap, SlotRecord
from jetjobs import logs
from jetjobs.cli_numbers import count, positive
from jetjobs.embedded import NatsServer
from scheduler import SchedulerConfig, SchedulerService

from .procinfo import cpu_seconds
from .report import Metrics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--templates", type=count(), default=1000, help="templates firing every second")
    parser.add_argument("--seconds", type=positive, default=60.0, help="how long they fire")
    parser.add_argument("--scale", type=count(), default=100_000, help="templates for the load test")


def _template(template_id: int, cron: str) -> ActiveTemplate:
    return ActiveTemplate(
        id=template_id,
        revision="r1",
        name=f"t{template_id}",
        company="bench",
        pool="default",
        app_id=1,
        executable="/bin/true",
        cron=cron,
        overlap=Overlap.ALLOW,
    )


async def _fill(bus: Bus, templates: list[ActiveTemplate]) -> None:
    """Put templates on the board pipelined (a put is a publish to the bucket's subject)."""
    for start in range(0, len(templates), 5000):
        chunk = templates[start : start + 5000]
        futures = [
            await bus.js.publish_async(
                f"$KV.{s.TEMPLATES_BUCKET}.{s.template_key(t.id)}", t.model_dump_json().encode()
            )
            for t in chunk
        ]
        await asyncio.gather(*futures)


async def _lateness(bus: Bus) -> list[float]:
    """Every recorded lateness, from the slot records in the stream."""
    info = await bus.js.stream_info(s.SLOTS_STREAM)
    found: list[float] = []
    sub = await bus.js.subscribe(s.SLOTS_ALL, stream=s.SLOTS_STREAM, ordered_consumer=True)
    try:
        for _ in range(info.state.messages):
            msg = await sub.next_msg(timeout=5)
            record = SlotRecord.model_validate_json(msg.data)
            if record.lateness is not None:
                found.append(record.lateness)
    finally:
        await sub.unsubscribe()
    return found


def _rss_bytes() -> int:
    """This process's resident memory now (Linux)."""
    with open("/proc/self/statm", encoding="ascii") as stat:
        return int(stat.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _add_lateness(metrics: Metrics, label: str, values: list[float], goal: str = "") -> None:
    for name, q in (("p50", 0.5), ("p99", 0.99)):
        metrics.add(f"{label} {name}", _quantile(values, q) * 1000, "ms", goal if name == "p99" else "")
    metrics.add(f"{label} max", max(values) * 1000, "ms")


async def precision(url: str, count: int, seconds: float, metrics: Metrics) -> None:
    bus = await Bus.open(url, "bench")
    service = SchedulerService(SchedulerConfig(nats_url=url))
    try:
        templates = [_template(i, "* * * * * *") for i in range(1, count + 1)]
        await _fill(bus, templates)
        floor = await _floor(bus, templates, min(seconds, 10.0))
        await bus.js.purge_stream(s.DISPATCH_STREAM)
        await service.start()
        cpu = cpu_seconds(os.getpid())
        await asyncio.sleep(seconds)
        cpu = cpu_seconds(os.getpid()) - cpu
        await service.stop()
        values = await _lateness(bus)
    finally:
        await service.stop()
        await bus.close()
    _add_lateness(metrics, "fire lateness", values, "p99 < 20")
    metrics.add("fire lateness mean", statistics.fmean(values) * 1000, "ms")
    metrics.add("slots fired", len(values), "slots", f"{count} x {seconds:g} s")
    metrics.add("scheduler CPU per 1000 slots", cpu / len(values) * 1000, "s")
    _add_lateness(metrics, "same-run floor: bare timer + hand-off", floor)
    metrics.add("polling design, 10 s cycle: p50", 5_000, "ms", "by construction")
    metrics.add("polling design, 10 s cycle: max", 10_000, "ms", "by construction")


async def _floor(bus: Bus, templates: list[ActiveTemplate], seconds: float) -> list[float]:
    """The best this machine does right now: at each whole second, hand off one
    ready-made message per template (no plan, no decisions), acks collected after."""
    handoff = Handoff(bus.nc, bus.publisher)
    await handoff.ensure_pools({"default"})
    found: list[float] = []
    start = int(time.time()) + 1
    for second in range(start, start + int(seconds)):
        slot = datetime.fromtimestamp(second, UTC)
        ready = [
            handoff.prepare(job_message(t, job_id=scheduled_job_id(-t.id, slot), slot=slot, now=slot))
            for t in templates
        ]
        await asyncio.sleep(max(0.0, second - time.time()))
        handed = await handoff.send(ready)
        found += [at - second for _, at in handed]
        await handoff.settle(
            [
                (item, sent)
                for item, (sent, _) in zip(ready, handed, strict=True)
                if isinstance(sent, asyncio.Future)
            ]
        )
    return found


async def scale(url: str, count: int, metrics: Metrics) -> None:
    """Fill the board here, then load it in a fresh process, so its RSS growth is
    the scheduler's own (not memory this process freed and it reused)."""
    bus = await Bus.open(url, "bench")
    try:
        crons = ["0 0 1 1 *", "*/5 * * * *", "0 3 * * *", "30 2 * * 1-5"]
        await _fill(bus, [_template(i, crons[i % len(crons)]) for i in range(1, count + 1)])
    finally:
        await bus.close()
    probe = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.scheduler", url, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await probe.communicate()
    if probe.returncode != 0:
        raise RuntimeError(f"the scheduler load probe failed with exit code {probe.returncode}")
    found = json.loads(out)
    metrics.add("load templates", found["load_s"], "s", f"{count} templates, < 10")
    metrics.add("scheduler RSS growth after load", found["rss_growth_mib"], "MiB", "< 300")
    metrics.add("one change reaches the plan", found["change_ms"], "ms", "< 1000")


async def _probe(url: str) -> dict[str, float]:
    """In a fresh process: load the board into a scheduler, measure its RSS growth,
    then how long one template change takes to reach its plan."""
    logs.configure("warning")
    service = SchedulerService(SchedulerConfig(nats_url=url))
    bus = await Bus.open(url, "bench-probe")
    try:
        gc.collect()
        before = _rss_bytes()
        began = time.perf_counter()
        await service.start()
        load = time.perf_counter() - began
        gc.collect()
        growth = (_rss_bytes() - before) / 2**20
        board = await TemplateBoard.open(bus.js)
        began = time.perf_counter()
        await board.put(_template(1, "0 4 * * *"))
        await _until_changed(service, 1, "0 4 * * *")
        change = (time.perf_counter() - began) * 1000
    finally:
        await service.stop()
        await bus.close()
    return {"load_s": load, "rss_growth_mib": growth, "change_ms": change}


async def _until_changed(service: SchedulerService, template_id: int, cron: str) -> None:
    """Poll the plan (a benchmark probe, not service code) until the change is in."""
    for _ in range(100_000):
        known = service.plan.template(template_id)
        if known is not None and known.cron == cron:
            return
        await asyncio.sleep(0.0005)
    raise TimeoutError("the change never reached the scheduler")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Each run uses a fresh NATS (empty streams)."""
    logs.configure("warning")
    metrics = Metrics()
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="jetjobs-bench-sched-") as tmp:
            server = NatsServer.start(Path(tmp) / "nats")
            try:
                await precision(server.url, args.templates, args.seconds, metrics)
                await scale(server.url, args.scale, metrics)
            finally:
                server.stop()
    return {
        "parameters": {"templates": args.templates, "seconds": args.seconds, "scale": args.scale},
        "metrics": metrics.metrics,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_probe(sys.argv[1]))))
