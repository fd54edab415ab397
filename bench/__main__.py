"""`python -m bench <scenario> [--runs N] [--out FILE]`: run, print a table, write JSON."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import report, scenarios
from .arguments import count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="jetjobs benchmarks on servers started here (no setup)."
    )
    sub = parser.add_subparsers(dest="scenario", required=True, metavar="SCENARIO")
    for name, module_name in scenarios.available().items():
        module = scenarios.load(module_name)
        doc = (module.__doc__ or name).strip().splitlines()[0]
        child = sub.add_parser(name, help=doc, description=module.__doc__)
        child.add_argument(
            "--runs", type=count(), default=3, help="repetitions (median and spread over them)"
        )
        child.add_argument(
            "--out", type=Path, help="JSON report path (default bench/results/<scenario>.json)"
        )
        child.add_argument(
            "--logs",
            default=str(Path(tempfile.gettempdir()) / "jetjobs-bench-logs"),
            help="folder for the services' logs",
        )
        if hasattr(module, "add_arguments"):
            module.add_arguments(child)
        child.set_defaults(module=module)
    return parser


def execute(args: argparse.Namespace) -> dict[str, Any]:
    """Call the scenario's `run(args)`, sync or async."""
    result = args.module.run(args)
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    if not isinstance(result, dict):
        raise TypeError(f"scenario {args.scenario} returned {type(result).__name__}, expected a dict")
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    final = report.finish(args.scenario, execute(args), argv)
    out = args.out or Path("bench") / "results" / f"{args.scenario}.json"
    report.write(final, out)
    print(report.table(final))
    print(f"\nJSON report: {out}   service logs: {args.logs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
