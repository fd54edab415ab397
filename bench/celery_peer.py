"""Celery as a peer: the same no-op and `true` workloads, Redis as broker and results.

`python -m bench.celery_peer URL CONCURRENCY` runs a prefork worker; the driver
uses `make_app(URL)` and sends tasks by name. Nothing is built at import time."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from celery import Celery


def noop() -> float:
    """Does nothing; returns when it started (wall clock)."""
    return time.time()


def run_true() -> float:
    """One real process per task, output captured; returns when it started."""
    started = time.time()
    subprocess.run(["true"], capture_output=True, check=True)
    return started


def make_app(redis_url: str) -> Any:
    app = Celery("jetjobs_bench", broker=f"{redis_url}/0", backend=f"{redis_url}/1")
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=4,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    app.task(name="bench.noop")(noop)
    app.task(name="bench.true")(run_true)
    return app


def main() -> None:
    redis_url, concurrency = sys.argv[1], sys.argv[2]
    make_app(redis_url).worker_main(
        [
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            concurrency,
            "--loglevel",
            "warning",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


if __name__ == "__main__":
    main()
