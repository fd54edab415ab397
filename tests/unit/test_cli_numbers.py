"""Numbers a user types out of range are refused by argparse before anything runs
(logging included), in one line that names the option, never with a traceback."""

from __future__ import annotations

import pytest

from jetjobs.cli import main
from tests.usage import usage_error


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["job", "list", "--limit", "0"], "argument --limit: must be at least 1, got 0"),
        (["dlq", "list", "--limit", "-5"], "argument --limit: must be at least 1, got -5"),
        (["audit", "--limit", "many"], "argument --limit: expected a whole number, got 'many'"),
        (["flow", "list", "--limit", "0"], "argument --limit: must be at least 1, got 0"),
        (["template", "explain", "3", "--next", "-1"], "argument --next: must be at least 0, got -1"),
        (["job", "run", "3", "--timeout", "0"], "argument --timeout: must be a number above 0, got 0"),
        (
            ["job", "run", "3", "--timeout-ack", "-1"],
            "argument --timeout-ack: must be a number above 0, got -1",
        ),
        (
            ["job", "run", "3", "--wait-timeout", "nan"],
            "argument --wait-timeout: must be a number above 0, got nan",
        ),
    ],
)
def test_a_number_out_of_range_is_refused_naming_the_option(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error(main, argv, capsys)
    assert err.strip().splitlines()[-1].endswith(expected)
    assert "Traceback" not in err
