"""One jetjobs service in its own process, for the benchmarks.

`python -m bench.service store --nats URL --database URL` or
`python -m bench.service executor --nats URL --slots 8 --runner noop`;
prints `ready` once started, stops cleanly on SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from bus import Layout
from executor import ExecutorConfig, ExecutorService
from executor.watcher import use_pidfd_watcher
from jetjobs import logs
from jetjobs.services import Service, start_all, stop_all, until_signalled
from store import StoreConfig, StoreService


def build(args: argparse.Namespace) -> Service:
    """The service the command line names."""
    if args.kind == "store":
        config = StoreConfig(nats_url=args.nats, database_url=args.database, batch_size=args.batch)
        return StoreService(config, Layout())
    executor = ExecutorConfig(nats_url=args.nats, slots=args.slots, runner=args.runner)
    return ExecutorService(executor, Layout())


async def serve(service: Service) -> None:
    """Start, say so on stdout, run until TERM, stop."""
    if isinstance(service, ExecutorService):
        use_pidfd_watcher()  # as `jetjobs executor` does
    started = await start_all([service])  # as `jetjobs` services start (heap settled)
    try:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await until_signalled()
    finally:
        await stop_all(started)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.service")
    parser.add_argument("kind", choices=["store", "executor"])
    parser.add_argument("--nats", required=True)
    parser.add_argument("--database", default="")
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--runner", choices=["process", "noop"], default="process")
    parser.add_argument("--batch", type=int, default=StoreConfig.batch_size)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    logs.configure(args.log_level, json=True)
    asyncio.run(serve(build(args)))


if __name__ == "__main__":
    main()
