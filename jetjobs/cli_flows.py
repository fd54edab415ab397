"""`jetjobs flow …`: validate, save, run, show, list, cancel and retry flows."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from contracts.api import ApiFailure
from contracts.flows import (
    FlowCancelled,
    FlowChecked,
    FlowError,
    FlowQuery,
    FlowRef,
    FlowRun,
    FlowRunList,
    FlowRunRequest,
    FlowStatus,
    NodeStatus,
    check_graph,
    check_result_names,
)

from . import commands, render, settings
from .cli_common import add_command, add_group, call, most
from .cli_numbers import count
from .commands import CommandError
from .flow_view import describe_run, draw, load_flow

WAIT_EVERY = 0.5


async def cmd_flow_validate(args: argparse.Namespace, conf: settings.Settings) -> int | None:
    spec = load_flow(Path(args.file))
    if args.offline:
        try:
            check_result_names(spec.nodes)
        except FlowError as error:
            raise CommandError(f"{args.file}: {error}") from None
        checked = FlowChecked(name=spec.name, company=spec.company, order=check_graph(spec.nodes))
        human = (
            f"flow {spec.name}: {len(spec.nodes)} nodes, no cycles, conditions parse "
            f"(applications and templates are not checked offline)\n{draw(spec)}"
        )
        commands.show(args.json, checked, human)
        return None

    async def action(ses: commands.Session) -> None:
        try:
            reply = await ses.api.call("flow.validate", spec, FlowChecked)
        except ApiFailure as error:
            if error.code >= 500:
                raise
            raise CommandError(f"{args.file}: {error.message}") from None
        ses.show(reply, f"flow {reply.name} is valid: runs {' → '.join(reply.order)}\n{draw(spec)}")

    return await call(args, conf, action)


async def cmd_flow_save(args: argparse.Namespace, conf: settings.Settings) -> int | None:
    spec = load_flow(Path(args.file))

    async def action(ses: commands.Session) -> None:
        reply = await ses.api.call("flow.save", spec, FlowChecked)
        ses.show(
            reply, f"saved flow {reply.company}/{reply.name}: a template may run it with --flow {reply.name}"
        )

    return await call(args, conf, action)


def _request(target: str, key: str | None) -> FlowRunRequest:
    path = Path(target)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        return FlowRunRequest(spec=load_flow(path), launched_by="cli", key=key)
    company, sep, name = target.partition("/")
    if not sep or not name:
        raise CommandError(f"{target!r} is not a flow file: give FILE, or COMPANY/NAME of a flow run before")
    return FlowRunRequest(company=company, name=name, launched_by="cli", key=key)


def _started_line(run: FlowRun, key: str | None) -> str:
    if run.existing:
        return f"flow {run.name}: run {run.id} was started before with key {key!r}: not started again"
    return f"started flow {run.name}: run {run.id}"


async def _wait(ses: commands.Session, run: FlowRun) -> FlowRun:
    while run.status is FlowStatus.STARTED:
        await asyncio.sleep(WAIT_EVERY)
        run = await ses.api.call("flow.get", FlowRef(id=run.id), FlowRun)
    return run


async def cmd_flow_run(args: argparse.Namespace, conf: settings.Settings) -> int | None:
    request = _request(args.target, args.key)

    async def action(ses: commands.Session) -> int | None:
        run = await ses.api.call("flow.run", request, FlowRun)
        if args.wait:
            run = await _wait(ses, run)
        ses.show(run, describe_run(run) if args.wait else _started_line(run, args.key))
        return 1 if run.status in (FlowStatus.ERROR, FlowStatus.CANCELLED) else None

    return await call(args, conf, action)


async def cmd_flow_show(args: argparse.Namespace, conf: settings.Settings) -> int | None:
    async def action(ses: commands.Session) -> None:
        run = await ses.api.call("flow.get", FlowRef(id=args.run), FlowRun)
        ses.show(run, describe_run(run))

    return await call(args, conf, action)


async def cmd_flow_list(args: argparse.Namespace, conf: settings.Settings) -> int | None:
    async def action(ses: commands.Session) -> None:
        reply = await ses.api.call(
            "flow.list", FlowQuery(company=args.company, limit=args.limit), FlowRunList
        )
        rows = [
            (
                r.id,
                r.company,
                r.name,
                r.status.value,
                r.created_at,
                f"{r.node_counts.get(NodeStatus.SUCCEEDED, 0)}/{sum(r.node_counts.values())}",
            )
            for r in reply.runs
        ]
        ses.show(reply.runs, render.table(rows, ["run", "company", "flow", "status", "created", "succeeded"]))

    return await call(args, conf, action)


async def cmd_flow_cancel(args: argparse.Namespace, conf: settings.Settings) -> int | None:
    async def action(ses: commands.Session) -> None:
        reply = await ses.api.call("flow.cancel", FlowRef(id=args.run), FlowCancelled)
        ses.show(
            reply, f"cancelled flow run {args.run}: {len(reply.cancelled_jobs)} running job(s) cancelled"
        )

    return await call(args, conf, action)


async def cmd_flow_retry(args: argparse.Namespace, conf: settings.Settings) -> int | None:
    async def action(ses: commands.Session) -> int | None:
        run = await ses.api.call("flow.retry", FlowRef(id=args.run), FlowRun)
        if args.wait:
            run = await _wait(ses, run)
        ses.show(run, describe_run(run))
        return 1 if run.status is FlowStatus.ERROR else None

    return await call(args, conf, action)


def register(sub: Any) -> None:
    """`flow validate|save|run|show|list|cancel|retry`."""
    flow = add_group(sub, "flow", "flows: DAGs of jobs")
    check = add_command(
        flow, "validate", cmd_flow_validate, "check a flow file: cycles, references, conditions"
    )
    check.add_argument("file")
    check.add_argument(
        "--offline",
        action="store_true",
        help="check the file only, without the store (--json: the same reply as online)",
    )
    add_command(flow, "save", cmd_flow_save, "validate a flow file and keep it, for templates").add_argument(
        "file"
    )
    run = add_command(flow, "run", cmd_flow_run, "run a flow from FILE, or COMPANY/NAME of a flow run before")
    run.add_argument("target", metavar="FILE|COMPANY/NAME")
    run.add_argument("--wait", action="store_true", help="wait for the run to end and show it")
    run.add_argument(
        "--key",
        metavar="KEY",
        help="idempotency key: run again with the same key, and the first run is shown instead of a "
        "second one (safe to retry after a timeout)",
    )
    add_command(flow, "show", cmd_flow_show, "draw a flow run's DAG with each node's status").add_argument(
        "run"
    )
    listing = add_command(flow, "list", cmd_flow_list, "list flow runs, newest first")
    listing.add_argument("--company")
    listing.add_argument("--limit", type=count(1, most(FlowQuery, "limit")), default=50)
    add_command(flow, "cancel", cmd_flow_cancel, "cancel running nodes and skip the rest").add_argument("run")
    retry = add_command(flow, "retry", cmd_flow_retry, "re-run the failed and skipped nodes of a run")
    retry.add_argument("run")
    retry.add_argument("--wait", action="store_true", help="wait for the run to end and show it")
