"""`output`: jobs that print line by line, each line its own write, as `python -u`
or a shell loop does. Measures what carrying their live output costs the executor
and NATS per line, how many log messages it takes, and how long the jobs take
against the same command with its output read by a bare pipe reader (same run).
Every line must arrive, in order, in the job's live log."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

from bus import Bus
from bus.output import job_output
from contracts import subjects as s
from jetjobs.cli_numbers import count

from .cpu_meter import meter
from .e2e import dispatch_all
from .harness import Servers, servers
from .report import Metrics
from .stack import System, system, wait_final

SCRIPT = """
import sys, time
start = time.monotonic()
for i in range({lines}):
    print(f"line {{i}} of the job", flush=True)
    time.sleep(max(0.0, start + (i + 1) / {rate} - time.monotonic()))
"""
"""One `write` per line at a steady pace, as a job that reports its progress does."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=count(), default=8, help="jobs per run, all at once")
    parser.add_argument("--lines", type=count(), default=6000, help="lines each job prints")
    parser.add_argument("--rate", type=count(), default=2000, help="lines per second each job prints")
    parser.add_argument("--slots", type=count(), default=8, help="executor slots")


def command(lines: int, rate: int) -> list[str]:
    return [sys.executable, "-c", SCRIPT.format(lines=lines, rate=rate)]


async def bare(jobs: int, lines: int, rate: int) -> float:
    """Seconds for `jobs` copies of the command at once, each pipe read to its end
    by asyncio and thrown away: what the jobs take with nothing carrying their output."""

    async def one() -> None:
        process = await asyncio.create_subprocess_exec(
            *command(lines, rate), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE
        )
        assert process.stdout is not None
        while await process.stdout.read(65536):
            pass
        await process.wait()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(jobs)))
    return time.perf_counter() - start


async def carried(box: Servers, stack: System, jobs: int, lines: int, rate: int) -> dict[str, Any]:
    """The jobs through jetjobs, from the first publish to the last outcome in Postgres,
    then their live logs read back."""
    cpu = meter(box, stack)
    cpu.start()
    start = time.time()
    await dispatch_all(stack.nats_url, jobs, command(lines, rate))
    end = await wait_final(stack.database_url, jobs, timeout=max(120.0, jobs * lines / 500))
    used = cpu.stop()
    bus = await Bus.attach(stack.nats_url, "jetjobs-bench-output")
    try:
        info = await bus.js.stream_info(s.LOGS_STREAM)
        ids = await _job_ids(stack.database_url)
        whole = [await _lines_in_log(bus, job_id) == lines for job_id in ids]
    finally:
        await bus.close()
    return {
        "seconds": end - start,
        "cpu_seconds": used,
        "log_messages": int(info.state.messages or 0),
        "complete": len(whole) == jobs and all(whole),
    }


async def _job_ids(database_url: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        return [r["id"] for r in await conn.fetch("SELECT id FROM job WHERE status = 'processed'")]
    finally:
        await conn.close()


async def _lines_in_log(bus: Bus, job_id: str) -> int:
    """How many of the expected lines the job's live log holds, in order."""
    text = "".join(
        [chunk.data async for chunk in job_output(bus.js, "bench", job_id) if chunk.stream == "stdout"]
    )
    got = text.splitlines()
    expected = [f"line {i} of the job" for i in range(len(got))]
    return len(got) if got == expected else -1


def run(args: argparse.Namespace) -> dict[str, Any]:
    metrics = Metrics()
    total = args.jobs * args.lines
    details: list[dict[str, Any]] = []
    with servers() as box:
        logs = Path(args.logs)
        logs.mkdir(parents=True, exist_ok=True)
        for i in range(args.runs):
            alone = asyncio.run(bare(args.jobs, args.lines, args.rate))
            with system(box, "process", args.slots, logs, f"output-{i}") as stack:
                result = asyncio.run(carried(box, stack, args.jobs, args.lines, args.rate))
            result["bare_seconds"] = alone
            details.append(result)
            cpu = result["cpu_seconds"]
            metrics.add("output: lines carried", total / result["seconds"], "lines/s")
            metrics.add("output: jobs' time against a bare pipe reader", result["seconds"] / alone, "times")
            metrics.add("output: executor CPU per line", cpu["executor"] / total * 1e6, "µs")
            metrics.add("output: nats CPU per line", cpu["nats"] / total * 1e6, "µs")
            metrics.add("output: log messages per 1,000 lines", result["log_messages"] / total * 1000, "msgs")
            metrics.add("output: every line in the live log, in order", float(result["complete"]), "1 = yes")
    params = {k: getattr(args, k) for k in ("jobs", "lines", "rate", "slots", "runs")}
    return {"parameters": params, "metrics": metrics.metrics, "runs": details}
