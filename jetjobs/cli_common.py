"""What every command module shares: declaring a subcommand, and one API
session per command made as the configured actor with its token."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from . import commands, settings

Handler = Callable[[argparse.Namespace, settings.Settings], Coroutine[Any, Any, int | None]]


def add_command(sub: Any, name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
    """A subcommand of `sub` that runs `handler`."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    return parser


async def call(
    args: argparse.Namespace, conf: settings.Settings, action: Callable[[commands.Session], Awaitable[Any]]
) -> int | None:
    """Run `action` in a session; an int it returns is the command's exit status."""
    async with commands.session(conf.require_nats(), args.json, conf.actor, conf.api_token) as ses:
        result = await action(ses)
    return result if isinstance(result, int) else None
