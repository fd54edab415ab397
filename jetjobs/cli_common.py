"""What every command module shares: declaring a subcommand, and one API
session per command made as the configured actor with its token."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, NoReturn

from pydantic import BaseModel, TypeAdapter, ValidationError

from contracts.base import Code

from . import commands, settings
from .commands import CommandError

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

WITHOUT_A_FLAG = (
    "Every setting may also come from a JETJOBS_* variable or a key of the --config file; "
    "a flag wins over a variable, a variable over the file. These have no flag: "
    "JETJOBS_ACK_WAIT: seconds a service may hold a message without a sign of life before NATS "
    "gives it to another (default 30, 1 to 86400); "
    "JETJOBS_MEMORY_LIMIT_MB: an executor's memory in MiB past which it drains and exits with status 75 "
    "(default 0: none); "
    "JETJOBS_SECRET_KEY_FILE, JETJOBS_SECRET_KEY: the store's credential keys; "
    "JETJOBS_REQUIRE_TOKENS: the store refuses API calls without a token; "
    "JETJOBS_API_TOKEN, JETJOBS_ACTOR: who API calls are made as; "
    "JETJOBS_EXECUTOR_ACTOR: who an executor is to the store; "
    "JETJOBS_COMPANY_LABELS: label job metrics by company. "
    "True/false settings take true/false, yes/no, on/off or 1/0. See the README."
)
"""The top help's epilog: the settings a variable or the config file sets, but no flag."""

AFTER_THE_COMMAND = (
    "The settings of `jetjobs --help` (--json, --nats-url, …) may also come after the command."
)


def global_options(parser: argparse.ArgumentParser) -> None:
    """The settings, on the top parser, which holds their defaults; its epilog names
    the settings without a flag."""
    parser.epilog = WITHOUT_A_FLAG
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


def add_group(sub: Any, name: str, help_text: str) -> Any:
    """A command group (`jetjobs NAME SUBCOMMAND`); `jetjobs NAME` alone is a usage
    error naming its subcommands, checked by `parse`."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    group = parser.add_subparsers()
    parser.set_defaults(handler=None, incomplete=lambda: _no_subcommand(parser, group))
    return group


def _no_subcommand(parser: argparse.ArgumentParser, group: Any) -> NoReturn:
    names = ", ".join(group.choices)
    parser.error(f"missing subcommand: one of {names} (see `{parser.prog} --help`)")


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line read by `parser`. A command that takes a list of values
    (`parser.set_defaults(trailing=DEST)`) takes them after its options too, as in
    `credentials set acme abra --from-env PASSWORD LOGIN=admin`."""
    args, extra = parser.parse_known_args(argv)
    if args.handler is None:
        args.incomplete()
    if extra:
        trailing = getattr(args, "trailing", None)
        if trailing is None or any(item.startswith("-") for item in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        setattr(args, trailing, [*getattr(args, trailing), *extra])
    return args


def most(model: type[BaseModel], field: str) -> int:
    """The largest value `model` takes in `field`, for the option that fills it to
    refuse more before anything runs rather than in the request's validation."""
    return next(int(rule.le) for rule in model.model_fields[field].metadata if hasattr(rule, "le"))


def check_code(value: str, what: str) -> str:
    """`value` as a company code or pool name, or a CommandError saying what one looks like."""
    try:
        return TypeAdapter(Code).validate_python(value)
    except ValidationError:
        raise CommandError(
            f"{what} {value!r} is not valid: use up to 32 lowercase letters, digits, '_' or '-', "
            "starting with a letter or digit"
        ) from None


def sendable(name: str, value: str, given: str) -> str:
    """`value` of variable `name`, refused (not shown: it may be a secret) if it is not
    UTF-8 text, which no request can carry; `given` says where it was given."""
    if not settings.is_utf8(name):
        raise CommandError(f"{given}: a variable name is not valid UTF-8 text; give it as UTF-8")
    if not settings.is_utf8(value):
        raise CommandError(f"{given} {name}: the value is not valid UTF-8 text; give it as UTF-8")
    return value


async def call(
    args: argparse.Namespace, conf: settings.Settings, action: Callable[[commands.Session], Awaitable[Any]]
) -> int | None:
    """Run `action` in a session; an int it returns is the command's exit status."""
    async with commands.session(conf.require_nats(), args.json, conf.actor, conf.api_token) as ses:
        result = await action(ses)
    return result if isinstance(result, int) else None
