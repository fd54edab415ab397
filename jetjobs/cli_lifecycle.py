"""`jetjobs dlq …`, `jetjobs job cancel` and `jetjobs runners`: the lifecycle's commands."""

from __future__ import annotations

import argparse
import json
from typing import Any

from contracts import api
from contracts.lifecycle import (
    CancelReply,
    DeadLetterList,
    DeadLetterQuery,
    DeadLetterRecord,
    DeadLetterRef,
    DeadLetterSummary,
    Replayed,
    RunnerList,
    RunnerQuery,
)

from . import commands, render, settings
from .cli_common import add_command, add_group, call, most
from .cli_numbers import count
from .pages import every_page


def _short(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


async def cmd_dlq_list(args: argparse.Namespace, conf: settings.Settings) -> None:
    async def action(ses: commands.Session) -> None:
        async def page(got: list[DeadLetterSummary]) -> tuple[list[DeadLetterSummary], bool]:
            before = got[-1].id if got else None
            query = DeadLetterQuery(company=args.company, limit=args.limit - len(got), before=before)
            reply = await ses.api.call("dlq.list", query, DeadLetterList)
            return reply.dead_letters, reply.more

        letters = await every_page(page, args.limit)
        rows = [
            (d.id, d.company, d.job_id or "-", d.at, d.replayed_as or "", _short(d.reason)) for d in letters
        ]
        ses.show(letters, render.table(rows, ["id", "company", "job", "at", "replayed", "reason"]))

    await call(args, conf, action)


def _message(payload: str) -> str:
    """The original message, indented when it is JSON (a job message usually is)."""
    try:
        return json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    except ValueError:
        return payload


def _letter_detail(letter: DeadLetterRecord) -> str:
    replayed = "" if letter.replayed_as is None else f"   replayed as attempt {letter.replayed_as}"
    lines = [
        f"dead letter  {letter.id}   company {letter.company}   job {letter.job_id or '-'}{replayed}",
        f"at           {letter.at.isoformat()}",
        f"subject      {letter.subject}",
        f"reason       {letter.reason}",
        *(f"header       {name}: {value}" for name, value in sorted(letter.headers.items())),
        f"--- message ({letter.size} bytes)",
        _message(letter.payload),
    ]
    return "\n".join(lines)


async def cmd_dlq_show(args: argparse.Namespace, conf: settings.Settings) -> None:
    async def action(ses: commands.Session) -> None:
        letter = await ses.api.call("dlq.get", DeadLetterRef(id=args.id), DeadLetterRecord)
        ses.show(letter, _letter_detail(letter))

    await call(args, conf, action)


async def cmd_dlq_replay(args: argparse.Namespace, conf: settings.Settings) -> None:
    async def action(ses: commands.Session) -> None:
        reply = await ses.api.call("dlq.replay", DeadLetterRef(id=args.id), Replayed)
        ses.show(reply, f"replayed dead letter {args.id} as job {reply.job_id} attempt {reply.attempt}")

    await call(args, conf, action)


CANCEL_STATES = {
    "queued": "it will never start",
    "running": "its process is being killed",
    "taken": "an executor has it and refuses or kills it; `jetjobs job show` tells how it ended",
}
"""What each state a cancel found means for the job."""


async def cmd_job_cancel(args: argparse.Namespace, conf: settings.Settings) -> None:
    async def action(ses: commands.Session) -> None:
        reply = await ses.api.call("job.cancel", api.JobRef(id=args.id), CancelReply)
        ses.show(reply, f"cancelled job {reply.job_id} ({reply.state}): {CANCEL_STATES.get(reply.state, '')}")

    await call(args, conf, action)


async def cmd_runners(args: argparse.Namespace, conf: settings.Settings) -> None:
    async def action(ses: commands.Session) -> None:
        reply = await ses.api.call("runner.list", RunnerQuery(pool=args.pool_name), RunnerList)
        rows = [(r.id, r.host, r.pool, r.slots, len(r.running), r.at) for r in reply.runners]
        ses.show(reply.runners, render.table(rows, ["runner", "host", "pool", "slots", "running", "seen"]))

    await call(args, conf, action)


def register(sub: Any) -> None:
    """`dlq list`, `dlq show ID`, `dlq replay ID` and `runners`."""
    dlq = add_group(
        sub, "dlq", "dead letters: jobs out of retries, and messages no service could read or route"
    )
    listing = add_command(
        dlq, "list", cmd_dlq_list, "list dead letters, newest first (`dlq show ID` gives one's message)"
    )
    listing.add_argument("--company")
    listing.add_argument("--limit", type=count(1, most(DeadLetterQuery, "limit")), default=50)
    show = add_command(dlq, "show", cmd_dlq_show, "show one dead letter with its original message")
    show.add_argument("id", type=int, help="dead letter id (from `jetjobs dlq list`)")
    replay = add_command(
        dlq, "replay", cmd_dlq_replay, "run a dead letter's job again, with a fresh retry budget"
    )
    replay.add_argument("id", type=int, help="dead letter id (from `jetjobs dlq list`)")
    runners = add_command(sub, "runners", cmd_runners, "list live executors")
    runners.add_argument("--pool", dest="pool_name", help="only this pool")


def register_job(job: Any) -> None:
    """`job cancel ID`, under the `job` command group."""
    add_command(
        job, "cancel", cmd_job_cancel, "cancel a job: a queued one never starts, a running one is killed"
    ).add_argument("id")
