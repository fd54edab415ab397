"""`jetjobs prune` and the store's retention options: how long history is kept."""

from __future__ import annotations

import argparse
import re
from typing import Any

from bus import ApiClient
from contracts.api import ApiFailure
from contracts.retention import (
    COUNT_TIMEOUT,
    DAY,
    HOUR,
    LONGEST,
    PRUNE_BUDGET,
    SHORTEST,
    PruneCounts,
    Pruned,
    PruneRequest,
)

from . import commands, render, settings
from .cli_common import add_command, call
from .cli_numbers import count

UNITS = {"h": HOUR, "d": DAY, "w": 7 * DAY}
_AGE = re.compile(r"^(\d+)([hdw])$")

PRUNE_WAIT = PRUNE_BUDGET + 16.0
"""Seconds the CLI waits for one prune request: the store answers once it has pruned
for `PRUNE_BUDGET` seconds, and the batch in hand may take a few more."""

COUNT_WAIT = COUNT_TIMEOUT + 30.0
"""Seconds it waits for a dry run, which counts every row it would remove."""


def age(text: str) -> float:
    """A duration such as `30d`, `12h` or `2w`, in seconds, within what the store takes."""
    match = _AGE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected a number and a unit h, d or w (e.g. 30d), got {text!r}")
    seconds = int(match[1]) * UNITS[match[2]]
    if not SHORTEST <= seconds <= LONGEST:
        raise argparse.ArgumentTypeError(
            f"{text}: give from 1h to {LONGEST / DAY:.0f}d (newer history may still be in flight)"
        )
    return seconds


def store_options(parser: argparse.ArgumentParser) -> None:
    """The retention settings of a process that runs a store (`store`, `up`)."""
    parser.add_argument(
        "--retention-days",
        type=count(0),
        metavar="DAYS",
        help="remove final jobs, flow runs, slot records, deleted templates and dead letters older "
        "than this (default 0: keep everything) [env JETJOBS_RETENTION_DAYS]",
    )
    parser.add_argument(
        "--audit-retention-days",
        type=count(0),
        metavar="DAYS",
        help="remove audit entries older than this (default 0: keep them) [env JETJOBS_AUDIT_RETENTION_DAYS]",
    )


def _table(reply: Pruned) -> str:
    verb = "would remove" if reply.dry_run else "removed"
    head = f"{verb} history that ended before {reply.before:%Y-%m-%d %H:%M:%S} UTC"
    if reply.audit_before is not None:
        head += f", audit entries before {reply.audit_before:%Y-%m-%d %H:%M:%S} UTC"
    counts = reply.counts.model_dump(exclude=None if reply.audit_before else {"audit_entries"})
    rows = [(kind.replace("_", " "), rows) for kind, rows in counts.items()]
    return f"{head}:\n{render.table(rows, ['kind', 'rows'])}"


async def cmd_prune(args: argparse.Namespace, conf: settings.Settings) -> None:
    request = PruneRequest(
        older_than=args.older_than, audit_older_than=args.audit_older_than, dry_run=args.dry_run
    )

    async def action(ses: commands.Session) -> None:
        actor = conf.actor or commands.default_actor()
        client = ApiClient(ses.bus.nc, COUNT_WAIT if args.dry_run else PRUNE_WAIT, actor, conf.api_token)
        total, reply = PruneCounts(), None
        while reply is None or reply.more:
            try:
                reply = await client.call("history.prune", request, Pruned)
            except ApiFailure as failure:
                if request.dry_run or (failure.code != 504 and not total.total):
                    raise
                raise commands.CommandError(_cut_short(failure, request, total)) from None
            total = total.plus(reply.counts)
        whole = reply.model_copy(update={"counts": total, "more": False})
        ses.show(whole, _table(whole))

    await call(args, conf, action)


def _age_text(seconds: float) -> str:
    return f"{seconds / DAY:g}d" if seconds % DAY == 0 else f"{seconds / HOUR:g}h"


def _cut_short(failure: ApiFailure, request: PruneRequest, done: PruneCounts) -> str:
    """A prune that failed after removing rows, or timed out (the store may have removed
    some and may still be at it): what is known, and how to see the rest."""
    message = failure.message
    if done.total:
        removed = ", ".join(f"{kind.replace('_', ' ')} {rows}" for kind, rows in done if rows)
        message += f" (this prune had removed {removed})"
    if failure.code == 504:
        message += (
            f": it may have removed {'more' if done.total else 'history'} since, and may still be at it"
        )
    dry = f"--older-than {_age_text(request.older_than)}"
    if request.audit_older_than is not None:
        dry += f" --audit-older-than {_age_text(request.audit_older_than)}"
    return (
        f"{message}; each batch removed is in the audit log (`jetjobs audit`, action history.prune), "
        f"and `jetjobs prune {dry} --dry-run` counts what is left"
    )


def register(sub: Any) -> None:
    prune = add_command(
        sub,
        "prune",
        cmd_prune,
        "remove final history older than a horizon, or count it with --dry-run (admin token only)",
    )
    prune.add_argument(
        "--older-than", type=age, required=True, metavar="AGE", help="e.g. 30d, 12h or 2w (at least 1h)"
    )
    prune.add_argument(
        "--audit-older-than", type=age, metavar="AGE", help="also remove audit entries older than this"
    )
    prune.add_argument("--dry-run", action="store_true", help="count what would go; remove nothing")
