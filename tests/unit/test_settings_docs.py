"""Every setting is documented where a user looks, and errors name its flag as the CLI spells it."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest

from jetjobs.cli import _flags, build_parser
from jetjobs.settings import Settings, flag_of

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
SETTINGS = [f.name for f in fields(Settings)]
FLAGGED = [name for name in _flags(argparse.Namespace()) if name in SETTINGS]


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def _mentioned(name: str, text: str) -> bool:
    return re.search(rf"JETJOBS_{name.upper()}(?!\w)", text) is not None


HELP = "\n".join(p.format_help() for p in _parsers(build_parser()))


@pytest.mark.parametrize("name", SETTINGS)
def test_every_setting_is_in_the_help(name: str) -> None:
    assert _mentioned(name, HELP), f"JETJOBS_{name.upper()} is in no `jetjobs … --help`"


@pytest.mark.parametrize("name", sorted(set(SETTINGS) - set(FLAGGED)))
def test_every_setting_without_a_flag_is_in_the_readme(name: str) -> None:
    assert _mentioned(name, README), f"JETJOBS_{name.upper()} has no flag and is not in the README"


@pytest.mark.parametrize("name", FLAGGED)
def test_errors_name_a_flag_the_cli_has(name: str) -> None:
    spelled = {
        option
        for parser in _parsers(build_parser())
        for action in parser._actions
        if action.dest == name
        for option in action.option_strings
    }
    assert flag_of(name) in spelled
