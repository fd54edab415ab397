"""Commands for watching jetjobs: `job logs`, `events`, `status`."""

from __future__ import annotations

import argparse
from typing import Any

from bus.watch import FOLLOW_PATIENCE

from . import settings
from .cli_common import add_command, call, check_code
from .observe.logs import job_logs, tail_events
from .observe.status import status

RIDES_OUT = (
    f"a NATS outage of up to {FOLLOW_PATIENCE:g} s is ridden out, a longer one ends it with an error (exit 1)"
)
"""What a following command does when NATS goes away, for its help."""


def _subcommands(sub: Any, group: str) -> Any:
    """The subcommands of an existing group (e.g. `job`), to add one to it."""
    parser: argparse.ArgumentParser = sub.choices[group]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise LookupError(f"command group {group} has no subcommands")


async def cmd_job_logs(args: argparse.Namespace, conf: settings.Settings) -> int | None:
    return await call(args, conf, lambda ses: job_logs(ses, args.id, args.follow))


async def cmd_events(args: argparse.Namespace, conf: settings.Settings) -> None:
    """Follow lifecycle events, of a company the store knows (`tail_events`)."""
    company = None if args.company is None else check_code(args.company, "--company")
    await call(args, conf, lambda ses: tail_events(ses, company))


async def cmd_status(args: argparse.Namespace, conf: settings.Settings) -> None:
    await call(args, conf, lambda ses: status(ses, conf.require_nats()))


def register(sub: Any) -> None:
    """Add `job logs`, `events` and `status` (the `job` group must exist already)."""
    logs = add_command(
        _subcommands(sub, "job"), "logs", cmd_job_logs, "print a job's output (stdout, stderr)"
    )
    logs.add_argument("id", help="job id")
    logs.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="keep printing until the job ends, then say on stderr how it ended; exit 0 if it was "
        f"processed, 1 if not (as `job run --wait`); {RIDES_OUT}",
    )
    events = add_command(
        sub, "events", cmd_events, f"print lifecycle events as they happen, until Ctrl-C; {RIDES_OUT}"
    )
    events.add_argument("--company", help="only this company's jobs")
    add_command(
        sub,
        "status",
        cmd_status,
        "servers, scheduler leader, runners, queues, store lag, failures; exits 1 when a part could not be "
        "read (the store did not answer, say)",
    )
