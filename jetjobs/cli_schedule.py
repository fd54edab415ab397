"""`jetjobs template pause|resume|delete|backfill|explain` and `jetjobs company pause|resume`:
the scheduling commands, plus the schedule options of `template create|update`."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from contracts import api
from contracts import schedule as sc
from contracts.cron import fires_between
from contracts.models import RunTemplate, cron_for

from . import commands, render, settings
from .cli_common import add_command, call, most
from .cli_numbers import count
from .commands import CommandError
from .progress import progress


def _instant(text: str) -> datetime:
    """An ISO 8601 time; one without an offset is read as UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 time such as 2026-03-01T00:00:00Z, got {text!r}"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def cmd_template_pause(args: argparse.Namespace, conf: settings.Settings) -> None:
    await _template_paused(args, conf, "template.pause", "paused: its slots are recorded as skipped")


async def cmd_template_resume(args: argparse.Namespace, conf: settings.Settings) -> None:
    await _template_paused(args, conf, "template.resume", "resumed: missed slots follow its misfire policy")


async def _template_paused(args: argparse.Namespace, conf: settings.Settings, op: str, what: str) -> None:
    async def action(ses: commands.Session) -> None:
        reply = await ses.api.call(op, api.TemplateRef(id=args.id), RunTemplate)
        ses.show(reply, f"template {reply.id} ({reply.name}) {what}")

    await call(args, conf, action)


async def cmd_template_delete(args: argparse.Namespace, conf: settings.Settings) -> None:
    async def action(ses: commands.Session) -> None:
        reply = await ses.api.call("template.delete", api.TemplateRef(id=args.id), RunTemplate)
        ses.show(
            reply,
            f"template {reply.id} ({reply.name}) deleted: it never runs again; its jobs stay "
            f"(`jetjobs job list --template {reply.id}`)",
        )

    await call(args, conf, action)


async def cmd_company_pause(args: argparse.Namespace, conf: settings.Settings) -> None:
    await _company_paused(args, conf, "company.pause")


async def cmd_company_resume(args: argparse.Namespace, conf: settings.Settings) -> None:
    await _company_paused(args, conf, "company.resume")


async def _company_paused(args: argparse.Namespace, conf: settings.Settings, op: str) -> None:
    async def action(ses: commands.Session) -> None:
        reply = await ses.api.call(op, sc.CompanyRef(code=args.code), sc.CompanyPaused)
        state = "paused" if reply.paused else "resumed"
        ses.show(reply, f"company {reply.code} {state} ({reply.templates} templates)")

    await call(args, conf, action)


BACKFILL_CHUNK = 200
"""Slots queued per API call, so a long backfill shows progress and a retry after
an interruption only repeats what had not been queued (each slot is deduplicated)."""


async def cmd_template_backfill(args: argparse.Namespace, conf: settings.Settings) -> None:
    async def action(ses: commands.Session) -> None:
        template = await ses.api.call("template.get", api.TemplateRef(id=args.id), RunTemplate)
        slots = _backfill_slots(template, args)
        queued: list[sc.BackfillSlot] = []
        deduplicated: list[sc.BackfillSlot] = []
        with progress(f"backfill template {args.id}", len(slots)) as tick:
            for start, end, count in _chunks(args.start, slots):
                request = sc.Backfill(id=args.id, start=start, end=end, limit=count)
                reply = await ses.api.call("template.backfill", request, sc.BackfillReply)
                queued += reply.queued
                deduplicated += reply.deduplicated
                tick(count)
        reply = sc.BackfillReply(template_id=args.id, queued=queued, deduplicated=deduplicated)
        rows = [(b.slot, b.job_id, "queued") for b in queued]
        rows += [(b.slot, b.job_id, "already ran") for b in deduplicated]
        summary = f"{len(queued)} queued, {len(deduplicated)} already ran"
        ses.show(reply, render.table(sorted(rows), ["slot (UTC)", "job", "backfill"]) + "\n" + summary)

    await call(args, conf, action)


def _backfill_slots(template: RunTemplate, args: argparse.Namespace) -> list[datetime]:
    """The slots of (--from, --to], or the one-line reason the range cannot be backfilled."""
    if template.deleted_at is not None:
        raise CommandError(
            f"template {template.id} ({template.name}) was deleted at {template.deleted_at:%Y-%m-%d %H:%M:%S %Z}: "
            f"it cannot run; its jobs stay (`jetjobs job list --template {template.id}`)"
        )
    cron = cron_for(template.interv, template.cron)
    if cron is None:
        from store.flow_templates import run_now  # here: client commands start faster without the store

        run = run_now(template.id, template.flow, template.company)
        raise CommandError(
            f"template {args.id} has no schedule (interval n), so no past slots: run it now with `{run}`"
        )
    if args.end <= args.start:
        raise CommandError("--to must be later than --from")
    if args.end > datetime.now(UTC):
        raise CommandError("--to is in the future: the scheduler runs future slots; backfill only past ones")
    slots = fires_between(cron, template.timezone, args.start, args.end, limit=args.limit + 1)
    if len(slots) > args.limit:
        raise CommandError(
            f"the range holds more than {args.limit} slots of template {args.id}: "
            "narrow --from/--to or raise --limit"
        )
    return slots


def _chunks(start: datetime, slots: list[datetime]) -> Iterator[tuple[datetime, datetime, int]]:
    """(start, end, count) ranges of at most BACKFILL_CHUNK slots covering `slots`."""
    for first in range(0, len(slots), BACKFILL_CHUNK):
        part = slots[first : first + BACKFILL_CHUNK]
        yield start if first == 0 else slots[first - 1], part[-1], len(part)


async def cmd_template_explain(args: argparse.Namespace, conf: settings.Settings) -> None:
    async def action(ses: commands.Session) -> None:
        request = sc.ExplainRequest(id=args.id, next=args.next, last=args.last)
        reply = await ses.api.call("template.explain", request, sc.Explanation)
        ses.show(reply, explain_text(reply))

    await call(args, conf, action)


SCHEDULED = "scheduled"


def schedule_state(e: sc.Explanation) -> str:
    """Whether the template's slots fire (SCHEDULED), or why not."""
    if e.deleted_at is not None:
        return f"not scheduled: deleted at {e.deleted_at:%Y-%m-%d %H:%M:%S %Z}"
    if not e.company_enabled:
        return f"not scheduled: company {e.company} is disabled"
    if not e.active:
        return "not scheduled: the template is inactive (--active false)"
    if e.cron is None:
        return "not scheduled: manual only (interval n); run it with `jetjobs job run`"
    if e.company_paused:
        return f"paused with its company {e.company}: slots are recorded as skipped"
    if e.paused:
        return "paused: slots are recorded as skipped"
    return SCHEDULED


def _slot_row(view: sc.SlotView) -> tuple[Any, ...]:
    r = view.record
    what = r.outcome.value if r.reason is None else f"{r.outcome.value} ({r.reason.value})"
    if r.flow_run is not None:
        return (r.slot, what, r.trigger.value, f"flow {r.flow_run}", view.flow_status or "-", r.detail or "")
    job = view.job_status if not view.job_kind else f"{view.job_status} ({view.job_kind})"
    return (r.slot, what, r.trigger.value, r.job_id or "-", job or "-", r.detail or "")


def explain_text(e: sc.Explanation) -> str:
    """The human form of an explanation: state, leader, next fires, last slots."""
    zone = ZoneInfo(e.timezone)
    lines = [
        f"template {e.template_id} ({e.name}) of company {e.company}: {schedule_state(e)}",
        f"schedule: {e.cron or '-'} in {e.timezone}; overlap {e.overlap.value}, "
        f"misfire {e.misfire.value}, jitter {e.jitter:g} s",
        f"scheduler: {'leader ' + e.leader if e.leader else 'NO scheduler is leading: nothing fires'}",
    ]
    if e.next:
        lines.append("next fire times:")
        lines += [f"  {t.astimezone(zone).isoformat()}  ({t.astimezone(UTC).isoformat()})" for t in e.next]
    rows = [_slot_row(view) for view in e.slots]
    lines.append("last slots:" if rows else "last slots: none recorded yet")
    if rows:
        lines.append(render.table(rows, ["slot (UTC)", "outcome", "trigger", "job", "status", "detail"]))
    return "\n".join(lines)


def register_template(template: Any) -> None:
    """`template pause|resume|delete|backfill|explain ID`."""
    add_command(
        template, "pause", cmd_template_pause, "pause a template (slots are recorded as skipped)"
    ).add_argument("id", type=int)
    add_command(template, "resume", cmd_template_resume, "resume a paused template").add_argument(
        "id", type=int
    )
    add_command(
        template,
        "delete",
        cmd_template_delete,
        "delete a template: it never runs again; its jobs and history stay (see `template list --deleted`)",
    ).add_argument("id", type=int)
    backfill = add_command(
        template, "backfill", cmd_template_backfill, "run the past slots of a range not run yet"
    )
    backfill.add_argument("id", type=int)
    backfill.add_argument(
        "--from",
        dest="start",
        type=_instant,
        required=True,
        help="range start (exclusive), ISO 8601; without an offset it is UTC, not the template's zone",
    )
    backfill.add_argument(
        "--to", dest="end", type=_instant, required=True, help="range end (inclusive), read as --from is"
    )
    backfill.add_argument(
        "--limit",
        type=count(1, most(sc.Backfill, "limit")),
        default=1000,
        help="refuse ranges with more slots (default 1000)",
    )
    explain = add_command(template, "explain", cmd_template_explain, "why a template runs, or does not")
    explain.add_argument("id", type=int)
    explain.add_argument(
        "--next",
        type=count(0, most(sc.ExplainRequest, "next")),
        default=5,
        help="upcoming fire times to list",
    )
    explain.add_argument(
        "--last", type=count(0, most(sc.ExplainRequest, "last")), default=10, help="latest slots to list"
    )


def register_company(company: Any) -> None:
    """`company pause|resume CODE`."""
    add_command(company, "pause", cmd_company_pause, "pause every template of a company").add_argument("code")
    add_command(company, "resume", cmd_company_resume, "resume a paused company").add_argument("code")


def schedule_options(parser: argparse.ArgumentParser) -> None:
    """Options of `template create|update` for the scheduling policies."""
    parser.add_argument("--overlap", choices=[o.value for o in sc.Overlap], help="while a run is active")
    parser.add_argument("--misfire", choices=[m.value for m in sc.Misfire], help="slots missed in downtime")
    parser.add_argument("--catch-up-limit", dest="catch_up_limit", type=int, help="most slots catch_up runs")
    parser.add_argument("--jitter", type=float, help="random start delay of up to this many seconds")


def schedule_values(args: argparse.Namespace) -> dict[str, Any]:
    """The scheduling options given, for the template spec."""
    names = ("overlap", "misfire", "catch_up_limit", "jitter")
    return {n: v for n in names if (v := getattr(args, n, None)) is not None}
