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

from jetjobs.cli_numbers import count

from . import report, scenarios
from .harness import profiling_refused


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


def unwritable(out: Path) -> str | None:
    """Why the JSON report could not go to `out`, found by trying before a run of
    minutes: its folder is made, the file opened to append (so it is left as it
    is) or, when missing, a scratch file made beside it."""
    if out.is_dir():
        return f"--out {out} is a folder: name a file in it"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            with out.open("a"):
                pass
        else:
            with tempfile.TemporaryFile(dir=out.parent):
                pass
    except (FileExistsError, NotADirectoryError):
        return f"cannot write the JSON report to {out}: part of {out.parent} is a file, not a folder"
    except OSError as error:
        return f"cannot write the JSON report to {out}: {error.strerror or error}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    out = args.out or Path("bench") / "results" / f"{args.scenario}.json"
    refused = unwritable(out) or profiling_refused()
    if refused:
        print(f"python -m bench: error: {refused}", file=sys.stderr)
        return 2
    try:
        result = execute(args)
    except KeyboardInterrupt:  # the servers and services were stopped on the way out
        print(f"\npython -m bench {args.scenario}: interrupted; no report written", file=sys.stderr)
        return 130
    final = report.finish(args.scenario, result, argv)
    print(report.table(final))
    try:
        report.write(final, out)
    except OSError as error:
        print(
            f"\npython -m bench: error: the JSON report could not be written to {out}: {error}",
            file=sys.stderr,
        )
        return 1
    print(f"\nJSON report: {out}   service logs: {args.logs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
