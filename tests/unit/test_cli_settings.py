"""The settings every command takes are accepted before or after the command."""

from __future__ import annotations

import pytest

from jetjobs.cli import build_parser


@pytest.mark.parametrize(
    "argv",
    [
        ["--json", "--home", "h", "job", "list"],
        ["job", "list", "--json", "--home", "h"],
        ["--json", "job", "list", "--home", "h"],
    ],
)
def test_a_setting_is_taken_on_either_side_of_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.json, args.home, args.nats_url) == (True, "h", None)


def test_a_setting_not_given_after_the_command_keeps_the_value_given_before() -> None:
    args = build_parser().parse_args(["--nats-url", "nats://a:4222", "--replicas", "3", "company", "list"])
    assert (args.nats_url, args.replicas, args.json) == ("nats://a:4222", 3, False)


def test_the_one_given_after_the_command_wins() -> None:
    args = build_parser().parse_args(["--home", "first", "executor", "--slots", "2", "--home", "second"])
    assert (args.home, args.slots) == ("second", 2)


def test_a_bad_setting_after_the_command_is_refused_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        build_parser().parse_args(["job", "list", "--replicas", "three"])
    assert refused.value.code == 2
    assert "--replicas: invalid int value: 'three'" in capsys.readouterr().err
