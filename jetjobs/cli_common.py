"""What every command module shares: declaring a subcommand, and one API
session per command made as the configured actor with its token."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from . import commands, settings

Handler = Callable[[argparse.Namespace, settings.Settings], Coroutine[Any, Any, int | None]]


def global_options(parser: argparse.ArgumentParser, default: Any = None) -> None:
    """The settings every command takes. The top parser holds their defaults; each
    command takes them too (defaults suppressed, so one not given there keeps the
    value given before it): `jetjobs job list --json` as well as `jetjobs --json job list`."""
    group = parser.add_argument_group("settings (before or after the command)")
    group.add_argument("--nats-url", default=default, help="NATS server URL [env JETJOBS_NATS_URL]")
    group.add_argument(
        "--database-url", default=default, help="PostgreSQL URL, for the store [env JETJOBS_DATABASE_URL]"
    )
    group.add_argument(
        "--home", default=default, help="folder of `jetjobs up` data (default .jetjobs) [env JETJOBS_HOME]"
    )
    group.add_argument(
        "--config", default=default, help="TOML file with any of these settings [env JETJOBS_CONFIG]"
    )
    group.add_argument(
        "--log-level", default=default, help="debug, info, warning or error [env JETJOBS_LOG_LEVEL]"
    )
    group.add_argument(
        "--replicas",
        type=int,
        default=default,
        help="stream replicas (3 on a cluster) [env JETJOBS_REPLICAS]",
    )
    group.add_argument(
        "--metrics-port",
        default=default,
        help="port of /metrics, /healthz, /readyz; 0: off [env JETJOBS_METRICS_PORT]",
    )
    group.add_argument(
        "--metrics-host",
        default=default,
        help="address the metrics port listens on [env JETJOBS_METRICS_HOST]",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=False if default is None else default,
        help="print JSON for scripts instead of tables",
    )


def add_command(sub: Any, name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
    """A subcommand of `sub` that runs `handler`, taking the global settings too."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    global_options(parser, default=argparse.SUPPRESS)
    return parser


async def call(
    args: argparse.Namespace, conf: settings.Settings, action: Callable[[commands.Session], Awaitable[Any]]
) -> int | None:
    """Run `action` in a session; an int it returns is the command's exit status."""
    async with commands.session(conf.require_nats(), args.json, conf.actor, conf.api_token) as ses:
        result = await action(ses)
    return result if isinstance(result, int) else None
