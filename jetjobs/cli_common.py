"""What every command module shares: declaring a subcommand, and one API
session per command made as the configured actor with its token."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from . import commands, settings

Handler = Callable[[argparse.Namespace, settings.Settings], Coroutine[Any, Any, int | None]]


SETTINGS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--nats-url", {"help": "NATS server URL [env JETJOBS_NATS_URL]"}),
    ("--database-url", {"help": "PostgreSQL URL, for the store [env JETJOBS_DATABASE_URL]"}),
    ("--home", {"help": "folder of `jetjobs up` data (default .jetjobs) [env JETJOBS_HOME]"}),
    ("--config", {"help": "TOML file with any of these settings [env JETJOBS_CONFIG]"}),
    ("--log-level", {"help": "debug, info, warning or error [env JETJOBS_LOG_LEVEL]"}),
    ("--replicas", {"type": int, "help": "stream replicas (3 on a cluster) [env JETJOBS_REPLICAS]"}),
    ("--metrics-port", {"help": "port of /metrics, /healthz, /readyz; 0: off [env JETJOBS_METRICS_PORT]"}),
    ("--metrics-host", {"help": "address the metrics port listens on [env JETJOBS_METRICS_HOST]"}),
    ("--json", {"action": "store_true", "help": "print JSON for scripts instead of tables"}),
)
"""The settings every command takes, before or after the command's name."""

AFTER_THE_COMMAND = (
    "The settings of `jetjobs --help` (--json, --nats-url, …) may also come after the command."
)


def global_options(parser: argparse.ArgumentParser) -> None:
    """The settings, on the top parser, which holds their defaults."""
    group = parser.add_argument_group("settings (before or after the command)")
    for flag, options in SETTINGS:
        group.add_argument(flag, **options)


def _settings_after(parser: argparse.ArgumentParser) -> None:
    """The settings on a command, unlisted (its help points to them) and without
    defaults, so one not given there keeps the value given before the command:
    `jetjobs job list --json` as well as `jetjobs --json job list`."""
    for flag, options in SETTINGS:
        parser.add_argument(flag, **{**options, "default": argparse.SUPPRESS, "help": argparse.SUPPRESS})


def add_command(sub: Any, name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
    """A subcommand of `sub` that runs `handler`, taking the settings too."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help_text, description=help_text, epilog=AFTER_THE_COMMAND
    )
    parser.set_defaults(handler=handler)
    _settings_after(parser)
    return parser


async def call(
    args: argparse.Namespace, conf: settings.Settings, action: Callable[[commands.Session], Awaitable[Any]]
) -> int | None:
    """Run `action` in a session; an int it returns is the command's exit status."""
    async with commands.session(conf.require_nats(), args.json, conf.actor, conf.api_token) as ses:
        result = await action(ses)
    return result if isinstance(result, int) else None
