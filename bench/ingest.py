"""`store`: lifecycle events ingested per second.

A backlog of N dispatch messages and 3N events (acknowledged, started,
processed) waits in the streams; the store starts and projects it. Measured
from the moment the store is ready (it takes from the backlog at once) to the
moment every job is final in Postgres, next to asyncpg COPY into a plain table
in the same run, with the CPU the store, Postgres and nats-server spent per
message (steadier than rates on a busy machine)."""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats

from bus import encode
from bus.publish import event_msg_id
from contracts import subjects as s
from contracts.enums import Status
from contracts.messages import JobEvent, JobMessage
from jetjobs.cli_numbers import count
from store import StoreConfig

from .harness import Servers, ServiceProcess, servers, start_service
from .procinfo import cpu_seconds
from .raw import RawSizes
from .raw import postgres as raw_postgres
from .report import Metrics
from .stack import completeness, job_messages, wait_final

WINDOW = 2000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=count(), default=20000, help="jobs in the backlog (3 events each)")
    parser.add_argument(
        "--batch", type=count(), default=StoreConfig.batch_size, help="the store's batch size"
    )
    parser.add_argument(
        "--stores",
        type=count(),
        default=1,
        help="store processes sharing the work (reported apart from the goal's one-store figure)",
    )


def lifecycle(message: JobMessage) -> list[JobEvent]:
    """The three events of a job that ran and exited 0."""
    now = datetime.now(UTC)
    base: dict[str, Any] = {
        "job_id": message.job_id,
        "company": message.company,
        "attempt": 1,
        "at": now,
        "runner": "bench",
    }
    return [
        JobEvent(status=Status.ACKNOWLEDGED, **base),
        JobEvent(status=Status.STARTED, pid=1, begin=now, **base),
        JobEvent(
            status=Status.PROCESSED, exit_code=0, begin=now, end=now, stdout="", stderr="", final=True, **base
        ),
    ]


async def publish_backlog(url: str, messages: list[JobMessage]) -> None:
    """Everything pipelined, with the same msg ids the services use."""
    items = [(s.dispatch_subject(m.company, m.pool), encode(m), m.job_id) for m in messages]
    for m in messages:
        items += [(s.events_subject(e.company, e.job_id), encode(e), event_msg_id(e)) for e in lifecycle(m)]
    nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
    try:
        js = nc.jetstream(timeout=30)
        pending: list[Any] = []
        for subject, payload, msg_id in items:
            pending.append(await js.publish_async(subject, payload, headers={"Nats-Msg-Id": msg_id}))
            if len(pending) >= WINDOW:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await nc.close()


def _cpu(box: Servers, stores: list[ServiceProcess]) -> dict[str, float]:
    """CPU seconds used so far by the stores, Postgres (all its processes) and nats-server."""
    return {
        "store": sum(cpu_seconds(store.pid) for store in stores),
        "postgres": cpu_seconds(box.postgres.pid, tree=True),
        "nats": cpu_seconds(box.nats.pid),
    }


def one_run(box: Servers, args: argparse.Namespace, logs: Path, tag: str) -> dict[str, Any]:
    box.restart_nats()
    database = box.fresh_database()
    argv = ["store", "--nats", box.nats.url, "--database", database, "--batch", str(args.batch)]
    start_service(argv, logs / f"{tag}-prepare.log").stop()  # migrate and declare consumers
    messages = job_messages(args.jobs, ["true"])
    asyncio.run(publish_backlog(box.nats.url, messages))
    stores = [ServiceProcess(argv, logs / f"{tag}-store{i or ''}.log") for i in range(args.stores)]
    try:
        for store in stores:  # all started at once, so they take the backlog together
            store.wait_ready()
        start = time.time()  # each store takes from the backlog as soon as it is ready
        before = _cpu(box, stores)
        end = asyncio.run(wait_final(database, args.jobs, timeout=120 + args.jobs / 100))
        cpu = {name: used - before[name] for name, used in _cpu(box, stores).items()}
    finally:
        for store in stores:
            store.stop()
    record = asyncio.run(completeness(database))
    copy = asyncio.run(raw_postgres(box.fresh_database(), RawSizes(rows=4 * args.jobs, inserts=10)))
    seconds = end - start
    messages = 4 * args.jobs
    return {
        "events_per_s": 3 * args.jobs / seconds,
        "messages_per_s": messages / seconds,
        "pg_copy_rows_per_s": copy["pg_copy"],
        "seconds": seconds,
        "cpu_seconds": {name: round(used, 2) for name, used in cpu.items()},
        "cpu_us_per_message": {name: 1e6 * used / messages for name, used in cpu.items()},
        "record": record,
        "complete": record["events"] == 3 * args.jobs and record.get("jobs_processed") == args.jobs,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    metrics = Metrics()
    runs = []
    with servers() as box:
        logs = Path(args.logs)
        logs.mkdir(parents=True, exist_ok=True)
        label, goal, cpu_label = (
            ("store", ">= 20,000", "store process")
            if args.stores == 1
            else (f"{args.stores} stores", "", "store processes")
        )
        for i in range(args.runs):
            result = one_run(box, args, logs, f"store-{i}")
            runs.append(result)
            metrics.add(f"{label}: events ingested", result["events_per_s"], "events/s", goal)
            metrics.add(f"{label}: all messages (dispatch + events)", result["messages_per_s"], "msgs/s")
            metrics.add("raw asyncpg COPY, same run", result["pg_copy_rows_per_s"], "rows/s")
            ratio = result["messages_per_s"] / result["pg_copy_rows_per_s"]
            metrics.add("store messages / COPY rows", ratio, "ratio")
            cpu = result["cpu_us_per_message"]
            metrics.add(f"{cpu_label} CPU per message", cpu["store"], "µs")
            metrics.add("postgres CPU per message", cpu["postgres"], "µs")
            metrics.add("nats-server CPU per message", cpu["nats"], "µs")
            metrics.add(f"{label}: every status persisted", 1.0 if result["complete"] else 0.0, "1 = yes")
    params = {"jobs": args.jobs, "batch": args.batch, "runs": args.runs, "stores": args.stores}
    return {"parameters": params, "metrics": metrics.metrics, "runs": runs}
