"""The `jetjobs` command: services, the embedded stack, and one-shot commands."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bus import BusUnavailable, InfrastructureDrift, PublishFailed, UnsupportedNats
from contracts import schema
from contracts.api import ApiFailure, JobQuery, RunNow, TemplateUpdate
from contracts.enums import Interval, Status
from contracts.errors import describe
from contracts.models import Company, Timeouts
from executor.config import MEMORY_EXIT, ExecutorStartError
from executor.watcher import use_pidfd_watcher
from store import NewerSchema, StoreUnavailable, UnsupportedPostgres

from . import (
    cli_flows,
    cli_lifecycle,
    cli_observe,
    cli_retention,
    cli_schedule,
    cli_tenants,
    commands,
    logs,
    settings,
)
from .cli_common import (
    Handler,
    add_command,
    add_group,
    call,
    check_code,
    global_options,
    most,
    parse,
    sendable,
)
from .cli_numbers import count, positive
from .commands import CommandError
from .errors import EmbeddedError, MetricsServerError
from .replies import SchemasWritten

EXPECTED_ERRORS = (
    ApiFailure,
    BusUnavailable,
    CommandError,
    EmbeddedError,
    InfrastructureDrift,
    MetricsServerError,
    NewerSchema,
    PublishFailed,
    settings.SettingsError,
    ExecutorStartError,
    StoreUnavailable,
    UnsupportedNats,
    UnsupportedPostgres,
)


def _env_pairs(values: Sequence[str] | None) -> dict[str, str]:
    pairs = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"--env expects KEY=VALUE, got {item!r}")
        pairs[key] = sendable(key, value, "--env")
    return pairs


def _bool(text: str) -> bool:
    """The same words as the true/false settings take."""
    lowered = text.strip().lower()
    if lowered not in settings.TRUE_WORDS + settings.FALSE_WORDS:
        raise argparse.ArgumentTypeError(f"expected true or false (or yes/no, on/off, 1/0), got {text!r}")
    return lowered in settings.TRUE_WORDS


def _timeouts(args: argparse.Namespace) -> dict[str, float]:
    return {
        name: value
        for name in ("timeout", "timeout_ack", "timeout_result")
        if (value := getattr(args, name, None)) is not None
    }


def _template_values(args: argparse.Namespace, *, partial: bool) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": args.name,
        "app": getattr(args, "app", None),
        "flow": getattr(args, "flow", None),
        "company": getattr(args, "company", None),
        "interv": args.interval or (Interval.CUSTOM.value if args.cron else None),
        "cron": args.cron,
        "timezone": args.timezone,
        "pool": args.pool_name,
        "retries": args.retries,
        "active": args.active,
        "env": None if partial or not args.env else _env_pairs(args.env),
        **cli_schedule.schedule_values(args),
    }
    if timeouts := _timeouts(args):
        values["timeouts"] = timeouts if partial else Timeouts(**timeouts)
    values = {k: v for k, v in values.items() if v is not None}
    if partial and "interv" in values and values["interv"] != Interval.CUSTOM.value:
        values.setdefault("cron", None)
    return values


async def cmd_store(args: argparse.Namespace, conf: settings.Settings) -> None:
    from . import services  # here: client commands start faster without the services
    from .observe.serve import STORE_PORT, serving

    async with serving(conf, STORE_PORT) as (telemetry, _):
        await services.run([services.store(conf, telemetry)])


async def cmd_scheduler(args: argparse.Namespace, conf: settings.Settings) -> None:
    from . import services  # here: client commands start faster without the services
    from .observe.serve import SCHEDULER_PORT, serving

    async with serving(conf, SCHEDULER_PORT) as (telemetry, _):
        await services.run([services.scheduler(conf, telemetry)])


async def cmd_executor(args: argparse.Namespace, conf: settings.Settings) -> int | None:
    """Run an executor; one that stopped at its memory limit exits MEMORY_EXIT, a
    failure, so that its supervisor starts a fresh one."""
    from . import services  # here: client commands start faster without the services
    from .observe.serve import EXECUTOR_PORT, serving

    use_pidfd_watcher()
    async with serving(conf, EXECUTOR_PORT) as (telemetry, _):
        if await services.run([services.executor(conf, telemetry)]):
            print(
                f"jetjobs: executor stopped at its memory limit ({conf.memory_limit_mb} MiB): "
                f"exit status {MEMORY_EXIT}, for its supervisor to start a fresh one",
                file=sys.stderr,
            )
            return MEMORY_EXIT
    return None


async def cmd_up(args: argparse.Namespace, conf: settings.Settings) -> None:
    from . import up  # here: client commands start faster without the services

    await up.up(conf, with_demo=args.demo)


async def cmd_schema_export(args: argparse.Namespace, conf: settings.Settings) -> None:
    if not args.directory:
        raise CommandError(
            "schema export: the folder is empty: name one, e.g. `jetjobs schema export schemas`"
        )
    directory = Path(args.directory)
    settings.make_folder(directory, "schema export")
    try:
        written = schema.export(directory)
    except OSError as error:
        raise settings.SettingsError(f"schema export {directory}: cannot write: {error.strerror}") from None
    reply = SchemasWritten(directory=str(directory), files=[str(path) for path in written])
    commands.show(args.json, reply, f"wrote {len(written)} JSON Schemas to {args.directory}")


async def cmd_company_create(args: argparse.Namespace, conf: settings.Settings) -> int | None:
    code = check_code(args.code, "company code")
    if args.name == "":
        raise CommandError("--name is empty: give a display name, or leave --name out to use the code")
    company = Company(code=code, name=args.name or code)
    return await call(args, conf, lambda s: commands.company_create(s, company))


async def cmd_company_list(args: argparse.Namespace, conf: settings.Settings) -> int | None:
    return await call(args, conf, commands.company_list)


async def cmd_app_import(args: argparse.Namespace, conf: settings.Settings) -> int | None:
    documents = [(Path(f), commands.read_app_file(Path(f))) for f in args.files]  # before connecting
    return await call(args, conf, lambda s: commands.app_import(s, documents))


async def cmd_app_list(args: argparse.Namespace, conf: settings.Settings) -> int | None:
    return await call(args, conf, commands.app_list)


async def cmd_template_create(args: argparse.Namespace, conf: settings.Settings) -> int | None:
    values = _template_values(args, partial=False)
    return await call(args, conf, lambda s: commands.template_create(s, values))


def _template_update(args: argparse.Namespace) -> TemplateUpdate:
    """The update as typed: `--env` sets single keys and `--unset-env` drops them, both
    applied by the store under the template's lock; `--replace-env` makes `--env` the whole env."""
    changes = _template_values(args, partial=True)
    pairs = _env_pairs(args.env)
    if args.replace_env:
        return TemplateUpdate(id=args.id, changes={**changes, "env": pairs})
    unset = args.unset_env or []
    for name in unset:
        sendable(name, "", "--unset-env")
    if both := sorted(set(pairs) & set(unset)):
        raise CommandError(f"{', '.join(both)}: both in --env and --unset-env; give each variable once")
    return TemplateUpdate(id=args.id, changes=changes, set_env=pairs, unset_env=unset)


async def cmd_template_update(args: argparse.Namespace, conf: settings.Settings) -> int | None:
    request = _template_update(args)
    return await call(args, conf, lambda s: commands.template_update(s, request))


async def cmd_template_list(args: argparse.Namespace, conf: settings.Settings) -> int | None:
    return await call(args, conf, lambda s: commands.template_list(s, args.company, args.deleted))


async def cmd_template_show(args: argparse.Namespace, conf: settings.Settings) -> int | None:
    return await call(args, conf, lambda s: commands.template_show(s, args.id))


WAIT_TIMEOUT = 3600.0
"""Seconds `job run --wait` waits for the outcome unless `--wait-timeout` says otherwise."""


def _wait(args: argparse.Namespace) -> float | None:
    """How long `job run` waits for the outcome (None: it does not); `--wait-timeout`
    alone asks to wait too, as `--cron` alone asks for `--interval c`."""
    if args.wait_timeout is not None:
        return float(args.wait_timeout)
    return WAIT_TIMEOUT if args.wait else None


async def cmd_job_run(args: argparse.Namespace, conf: settings.Settings) -> int | None:
    timeouts = _timeouts(args)
    request = RunNow(
        id=args.template,
        env=_env_pairs(args.env),
        timeouts=Timeouts(**timeouts) if timeouts else None,
        launched_by="cli",
        key=args.key,
    )
    wait = _wait(args)
    return await call(args, conf, lambda s: commands.job_run(s, request, wait))


async def cmd_job_show(args: argparse.Namespace, conf: settings.Settings) -> int | None:
    return await call(args, conf, lambda s: commands.job_show(s, args.id))


async def cmd_job_list(args: argparse.Namespace, conf: settings.Settings) -> int | None:
    query = JobQuery(company=args.company, template_id=args.template, status=args.status, limit=args.limit)
    return await call(args, conf, lambda s: commands.job_list(s, query))


def _timeout_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout", type=positive, help="seconds from dispatch for an executor to take the job"
    )
    parser.add_argument(
        "--timeout-ack", dest="timeout_ack", type=positive, help="seconds to acknowledge once received"
    )
    parser.add_argument(
        "--timeout-result",
        dest="timeout_result",
        type=positive,
        help="seconds from acknowledgement to the result",
    )


def _template_options(parser: argparse.ArgumentParser, *, create: bool) -> None:
    codes = ", ".join(f"{i.value}" for i in Interval)
    parser.add_argument("--name", required=create, help="template name, unique within the company")
    if create:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--app", help="application id or uuid")
        target.add_argument("--flow", help="name of a saved flow of the company: every fire runs it")
        parser.add_argument("--company", required=True, help="company code")
    parser.add_argument(
        "--interval",
        choices=[i.value for i in Interval],
        metavar="CODE",
        help=f"one of {codes} (n: manual only, c: custom cron)",
    )
    parser.add_argument(
        "--cron", help="cron expression: 5 fields, or 6 with seconds first (implies --interval c)"
    )
    parser.add_argument("--timezone", help="IANA timezone the cron is read in (default UTC)")
    if create:
        parser.add_argument(
            "--env", action="append", metavar="KEY=VALUE", help="environment override (repeatable)"
        )
    else:
        _env_update_options(parser)
    parser.add_argument("--pool", dest="pool_name", help="executor pool (default 'default')")
    parser.add_argument("--retries", type=int, help="automatic re-runs after an error")
    parser.add_argument("--active", type=_bool, help="true or false: whether the template is scheduled")
    _timeout_options(parser)
    cli_schedule.schedule_options(parser)


def _env_update_options(parser: argparse.ArgumentParser) -> None:
    """How `template update` changes the env: key by key, or all of it."""
    parser.add_argument(
        "--env",
        action="append",
        metavar="KEY=VALUE",
        help="add or replace this variable; the template's other variables are kept (repeatable)",
    )
    whole = parser.add_mutually_exclusive_group()
    whole.add_argument(
        "--unset-env",
        action="append",
        metavar="KEY",
        help="remove this variable from the template's env; one it lacks is ignored (repeatable)",
    )
    whole.add_argument(
        "--replace-env",
        action="store_true",
        help="replace the template's whole env with the --env variables given (none: empty it)",
    )


def _service_commands(sub: Any) -> None:
    up_parser = add_command(
        sub, "up", cmd_up, "run NATS, PostgreSQL and all services here (embedded servers unless URLs are set)"
    )
    up_parser.add_argument(
        "--demo", action="store_true", help="also create a demo company with jobs every few seconds"
    )
    cli_retention.store_options(up_parser)
    store_parser = add_command(sub, "store", cmd_store, "run the store service (Postgres projection and API)")
    cli_retention.store_options(store_parser)
    add_command(sub, "scheduler", cmd_scheduler, "run a scheduler")
    ex = add_command(sub, "executor", cmd_executor, "run an executor for one pool")
    ex.add_argument("--pool", help="pool to serve (default 'default') [env JETJOBS_POOL]")
    ex.add_argument("--slots", type=int, help="jobs run at once (default 8) [env JETJOBS_SLOTS]")
    ex.add_argument(
        "--runner",
        choices=("process", "podman", "docker"),
        help="run jobs as processes (default) or in the app's OCI image [env JETJOBS_RUNNER]",
    )
    ex.add_argument(
        "--container-engine", metavar="PATH", help="path of podman/docker [env JETJOBS_CONTAINER_ENGINE]"
    )
    ex.add_argument(
        "--company",
        dest="executor_company",
        metavar="CODE",
        help="serve only this company, from its own consumer [env JETJOBS_EXECUTOR_COMPANY]",
    )
    ex.add_argument(
        "--bind-only",
        action="store_const",
        const=True,
        help="create nothing on NATS, only bind to the consumer (NATS users without "
        "provisioning rights) [env JETJOBS_BIND_ONLY]",
    )
    ex.add_argument(
        "--live-output-mb",
        type=count(),
        metavar="MIB",
        help="MiB of a job attempt's output streamed live; past it the live log says it stopped "
        "(default 16) [env JETJOBS_LIVE_OUTPUT_MB]",
    )
    schema_parser = add_group(sub, "schema", "JSON Schemas of every message")
    add_command(
        schema_parser,
        "export",
        cmd_schema_export,
        "write one JSON Schema per message (--json: the folder and the files written)",
    ).add_argument("directory")


def _entity_commands(sub: Any) -> None:
    company = add_group(sub, "company", "companies (tenants)")
    create = add_command(company, "create", cmd_company_create, "create a company")
    create.add_argument("code", help="short lowercase code used in subjects, e.g. acme")
    create.add_argument("--name", help="display name (default: the code)")
    add_command(company, "list", cmd_company_list, "list companies")
    cli_tenants.register_company(company)
    cli_schedule.register_company(company)

    app = add_group(sub, "app", "applications")
    add_command(
        app,
        "import",
        cmd_app_import,
        "import MultiFlexi app JSON files (--json: the reply for one file, a JSON array for several)",
    ).add_argument("files", nargs="+", metavar="FILE")
    add_command(app, "list", cmd_app_list, "list applications")
    cli_tenants.register_app(app)

    template = add_group(sub, "template", "run templates")
    _template_options(
        add_command(template, "create", cmd_template_create, "create a run template"), create=True
    )
    update = add_command(template, "update", cmd_template_update, "change a run template")
    update.add_argument("id", type=int)
    _template_options(update, create=False)
    listing = add_command(template, "list", cmd_template_list, "list run templates")
    listing.add_argument("--company")
    listing.add_argument(
        "--deleted", action="store_true", help="list the deleted templates instead of the live ones"
    )
    add_command(
        template, "show", cmd_template_show, "show one template: schedule, state, env, credentials, policies"
    ).add_argument("id", type=int)
    cli_schedule.register_template(template)
    cli_tenants.register_template(template)


def _job_commands(sub: Any) -> None:
    job = add_group(sub, "job", "jobs")
    run = add_command(job, "run", cmd_job_run, "run a template now")
    run.add_argument("template", type=int, help="template id")
    run.add_argument("--env", action="append", metavar="KEY=VALUE", help="environment override for this run")
    run.add_argument(
        "--key",
        metavar="KEY",
        help="idempotency key: run again with the same key, and the first run's job is shown instead "
        "of a second run (safe to retry after a timeout)",
    )
    run.add_argument(
        "--wait",
        action="store_true",
        help="wait for the outcome and show the job; exit 0 if it was processed, 1 if not "
        "(or if the wait timed out)",
    )
    run.add_argument(
        "--wait-timeout",
        type=positive,
        metavar="SECONDS",
        help=f"give up waiting after this many seconds (default {WAIT_TIMEOUT:g}; implies --wait)",
    )
    _timeout_options(run)
    cli_lifecycle.register_job(job)
    cli_tenants.register_job(job)
    add_command(job, "show", cmd_job_show, "show a job with its attempts and output").add_argument("id")
    listing = add_command(job, "list", cmd_job_list, "list jobs, newest first")
    listing.add_argument(
        "--company", help="only this company's jobs (one the store does not know is an error)"
    )
    listing.add_argument(
        "--template", type=int, help="only this template's jobs, deleted or not (an unknown id is an error)"
    )
    listing.add_argument("--status", choices=[s.value for s in Status])
    listing.add_argument("--limit", type=count(1, most(JobQuery, "limit")), default=50)


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree; every setting also has a JETJOBS_* variable."""
    parser = argparse.ArgumentParser(
        prog="jetjobs", description="Jobs for many tenants over NATS JetStream, recorded in PostgreSQL."
    )
    global_options(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _service_commands(sub)
    _entity_commands(sub)
    _job_commands(sub)
    cli_observe.register(sub)
    cli_lifecycle.register(sub)
    cli_tenants.register(sub)
    cli_flows.register(sub)
    cli_retention.register(sub)
    return parser


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("nats_url", "database_url", "home", "config", "log_level", "replicas", "slots")
    executor = ("runner", "container_engine", "executor_company", "bind_only", "live_output_mb")
    store = ("retention_days", "audit_retention_days")
    flags = {k: getattr(args, k, None) for k in (*keys, *executor, *store, "metrics_port", "metrics_host")}
    flags["pool"] = getattr(args, "pool", None)
    return flags


def _reader_gone() -> int:
    """stdout's reader left early (`jetjobs job list | head -1`): as Python's docs
    advise, point stdout at devnull so the final flush cannot fail again, and exit 1."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 1


SERVICES = frozenset({"store", "scheduler", "executor"})
"""Commands that run a service: their info lines are the service's record."""


def _configure_logs(command: str, level: str | None) -> None:
    """Services log at info; `up` at warning, to a file once its home is known
    (`up._log_to_home`); every other command is a client, whose answer is what it
    prints, so it shows only warnings and errors (`logs.configure_client`)."""
    if command in SERVICES:
        logs.configure(level or "info")
    elif command == "up":
        logs.configure(level or "warning")
    else:
        logs.configure_client(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: a user's mistake is one line on stderr and a non-zero exit."""
    args = parse(build_parser(), argv)
    try:
        conf = settings.load(_flags(args))
        _configure_logs(args.command, conf.log_level)
        handler: Handler = args.handler
        code = asyncio.run(handler(args, conf)) or 0
        sys.stdout.flush()  # here, so a reader that left is seen while it can be handled
        return code
    except BrokenPipeError:
        return _reader_gone()
    except EXPECTED_ERRORS as error:
        print(f"jetjobs: error: {getattr(error, 'message', None) or error}", file=sys.stderr)
        return 1
    except ValidationError as error:  # a request built here from what was typed
        print(f"jetjobs: error: {describe(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
