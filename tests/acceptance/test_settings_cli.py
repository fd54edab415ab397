"""A bad setting stops a real `jetjobs` command with one line naming where it was
given (flag, variable or config file key), exit status 1 and no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.cli import clean_env, jetjobs
from tests.acceptance.test_cli import one_line_error

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("variables", "argv", "expected"),
    [
        ({"JETJOBS_ACK_WAIT": "inf"}, ["executor"], "JETJOBS_ACK_WAIT='inf' must be from 1 to 86400 seconds"),
        (
            {"JETJOBS_ACK_WAIT": "1e12"},
            ["executor"],
            "JETJOBS_ACK_WAIT='1e12' must be from 1 to 86400 seconds",
        ),
        (
            {"JETJOBS_REQUIRE_TOKENS": "ture"},
            ["company", "list"],
            "JETJOBS_REQUIRE_TOKENS='ture' is not true or false: write true or false",
        ),
        ({}, ["company", "list", "--replicas", "0"], "--replicas 0 must be at least 1"),
        (
            {},
            ["--config", "{config}", "executor"],
            'slots = "abc" in config file {config} must be a whole number',
        ),
    ],
)
async def test_a_bad_setting_is_one_line_naming_its_source(
    nats_url: str, tmp_path: Path, variables: dict[str, str], argv: list[str], expected: str
) -> None:
    config = tmp_path / "jetjobs.toml"
    config.write_text('slots = "abc"\n')
    env = clean_env(JETJOBS_NATS_URL=nats_url, JETJOBS_HOME=str(tmp_path / "home"), **variables)
    result = await jetjobs(*(arg.format(config=config) for arg in argv), env=env, timeout=30)
    one_line_error(result, expected.format(config=config))
