"""`jetjobs template pause|resume|backfill|explain` and `jetjobs company pause|resume`:
the scheduling commands, plus the schedule options of `template create|update`."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from contracts import api
from contracts import schedule as sc
from contracts.models import RunTemplate

from . import commands, render, settings


async def _call(args: argparse.Namespace, conf: settings.Settings, action: Any) -> None:
    async with commands.session(conf.require_nats(), args.json) as ses:
        await action(ses)


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

    await _call(args, conf, action)


async def cmd_company_pause(args: argparse.Namespace, conf: settings.Settings) -> None:
    await _company_paused(args, conf, "company.pause")


async def cmd_company_resume(args: argparse.Namespace, conf: settings.Settings) -> None:
    await _company_paused(args, conf, "company.resume")


async def _company_paused(args: argparse.Namespace, conf: settings.Settings, op: str) -> None:
    async def action(ses: commands.Session) -> None:
        reply = await ses.api.call(op, sc.CompanyRef(code=args.code), sc.CompanyPaused)
        state = "paused" if reply.paused else "resumed"
        ses.show(reply, f"company {reply.code} {state} ({reply.templates} templates)")

    await _call(args, conf, action)


async def cmd_template_backfill(args: argparse.Namespace, conf: settings.Settings) -> None:
    async def action(ses: commands.Session) -> None:
        request = sc.Backfill(id=args.id, start=args.start, end=args.end, limit=args.limit)
        reply = await ses.api.call("template.backfill", request, sc.BackfillReply)
        rows = [(b.slot, b.job_id, "queued") for b in reply.queued]
        rows += [(b.slot, b.job_id, "already ran") for b in reply.deduplicated]
        summary = f"{len(reply.queued)} queued, {len(reply.deduplicated)} already ran"
        ses.show(reply, render.table(sorted(rows), ["slot (UTC)", "job", "backfill"]) + "\n" + summary)

    await _call(args, conf, action)


async def cmd_template_explain(args: argparse.Namespace, conf: settings.Settings) -> None:
    async def action(ses: commands.Session) -> None:
        request = sc.ExplainRequest(id=args.id, next=args.next, last=args.last)
        reply = await ses.api.call("template.explain", request, sc.Explanation)
        ses.show(reply, explain_text(reply))

    await _call(args, conf, action)


def _state(e: sc.Explanation) -> str:
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
    return "scheduled"


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
        f"template {e.template_id} ({e.name}) of company {e.company}: {_state(e)}",
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


def _add(sub: Any, name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    return parser


def register_template(template: Any) -> None:
    """`template pause|resume|backfill|explain ID`."""
    _add(
        template, "pause", cmd_template_pause, "pause a template (slots are recorded as skipped)"
    ).add_argument("id", type=int)
    _add(template, "resume", cmd_template_resume, "resume a paused template").add_argument("id", type=int)
    backfill = _add(template, "backfill", cmd_template_backfill, "run the past slots of a range not run yet")
    backfill.add_argument("id", type=int)
    backfill.add_argument(
        "--from", dest="start", type=_instant, required=True, help="range start (exclusive)"
    )
    backfill.add_argument("--to", dest="end", type=_instant, required=True, help="range end (inclusive)")
    backfill.add_argument(
        "--limit", type=int, default=1000, help="refuse ranges with more slots (default 1000)"
    )
    explain = _add(template, "explain", cmd_template_explain, "why a template runs, or does not")
    explain.add_argument("id", type=int)
    explain.add_argument("--next", type=int, default=5, help="upcoming fire times to list")
    explain.add_argument("--last", type=int, default=10, help="latest slots to list")


def register_company(company: Any) -> None:
    """`company pause|resume CODE`."""
    _add(company, "pause", cmd_company_pause, "pause every template of a company").add_argument("code")
    _add(company, "resume", cmd_company_resume, "resume a paused company").add_argument("code")


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
