"""How the command line is read, before anything runs: command groups without a
subcommand, values after options, and what `template update` asks the store for.
(`parse` in-process: it stops before `main` sets up logging.)"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence

import pytest

from contracts.api import TemplateUpdate
from jetjobs.cli import _template_update, build_parser
from jetjobs.cli_common import parse
from jetjobs.commands import CommandError
from tests.usage import usage_error


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    return parse(build_parser(), argv)


def _groups(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command group (a command with subcommands) under `parser`, as its words."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                if any(isinstance(a, argparse._SubParsersAction) for a in child._actions):
                    yield (*path, name)
                    yield from _groups(child, (*path, name))


GROUPS = list(_groups(build_parser()))


def test_the_groups_are_found() -> None:
    assert {("schema",), ("company",), ("actor", "token"), ("flow",), ("dlq",)} <= set(GROUPS)


@pytest.mark.parametrize("group", GROUPS, ids=" ".join)
def test_a_group_without_a_subcommand_names_its_subcommands(
    group: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error(_parse, list(group), capsys)
    assert err.startswith(f"usage: jetjobs {' '.join(group)} ")
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"jetjobs {' '.join(group)}: error: missing subcommand: one of ")
    assert f"(see `jetjobs {' '.join(group)} --help`)" in last
    assert "action" not in last


def test_schema_names_export(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(_parse, ["schema"], capsys)
    assert "jetjobs schema: error: missing subcommand: one of export (see `jetjobs schema --help`)" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["credentials", "set", "acme", "abra", "--from-env", "PASSWORD", "LOGIN=admin"],
        ["credentials", "set", "acme", "abra", "LOGIN=admin", "--from-env", "PASSWORD"],
        ["credentials", "set", "acme", "abra", "--from-env", "PASSWORD", "LOGIN=admin", "--json"],
    ],
)
def test_credential_values_come_before_or_after_the_options(argv: list[str]) -> None:
    args = _parse(argv)
    assert (args.company, args.name, args.values, args.from_env) == (
        "acme",
        "abra",
        ["LOGIN=admin"],
        ["PASSWORD"],
    )


def test_values_around_options_are_all_kept() -> None:
    args = _parse(
        ["credentials", "set", "acme", "abra", "A=1", "--kind", "k", "B=2", "--from-env", "P", "C=3"]
    )
    assert (args.values, args.kind, args.from_env) == (["A=1", "B=2", "C=3"], "k", ["P"])


@pytest.mark.parametrize(
    "argv",
    [
        ["credentials", "set", "acme", "abra", "--from-env", "P", "--bogus", "X=1"],
        ["credentials", "list", "acme", "extra"],
        ["job", "list", "extra"],
    ],
)
def test_unknown_words_are_still_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert "jetjobs: error: unrecognized arguments: " in usage_error(_parse, argv, capsys)


def _update(*argv: str) -> TemplateUpdate:
    return _template_update(_parse(["template", "update", "7", *argv]))


def test_update_env_sets_and_unsets_single_keys() -> None:
    assert _update("--env", "C=3") == TemplateUpdate(id=7, set_env={"C": "3"})
    assert _update(
        "--env", "C=3", "--unset-env", "A", "--unset-env", "B", "--retries", "2"
    ) == TemplateUpdate(id=7, changes={"retries": 2}, set_env={"C": "3"}, unset_env=["A", "B"])


def test_replace_env_makes_the_given_env_the_whole_env() -> None:
    assert _update("--replace-env", "--env", "Z=9") == TemplateUpdate(id=7, changes={"env": {"Z": "9"}})
    assert _update("--replace-env") == TemplateUpdate(id=7, changes={"env": {}})


def test_a_variable_both_set_and_unset_is_refused() -> None:
    with pytest.raises(CommandError, match="C: both in --env and --unset-env; give each variable once"):
        _update("--env", "C=3", "--unset-env", "C")


def test_unset_env_and_replace_env_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(_parse, ["template", "update", "7", "--replace-env", "--unset-env", "A"], capsys)
    assert "argument --unset-env: not allowed with argument --replace-env" in err


def test_update_help_says_what_each_env_option_does(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse(["template", "update", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "add or replace this variable; the template's other variables are kept" in text
    assert "remove this variable from the template's env" in text
    assert "replace the template's whole env with the --env variables given (none: empty it)" in text


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["template", "explain", "3", "--next", "101"], "argument --next: must be at most 100, got 101"),
        (["job", "list", "--limit", "1001"], "argument --limit: must be at most 1000, got 1001"),
    ],
)
def test_numbers_above_what_the_store_takes_are_refused_up_front(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert expected in usage_error(_parse, argv, capsys)
