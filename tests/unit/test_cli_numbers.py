"""Numbers and filters a user types are refused before anything runs, in one line
that names the option, never with a traceback."""

from __future__ import annotations

import pytest

from jetjobs.cli import main


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
    with pytest.raises(SystemExit) as refused:
        main(argv)
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].endswith(expected)
    assert "Traceback" not in err


def test_a_filter_a_request_cannot_hold_is_one_line_before_connecting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["--nats-url", "nats://127.0.0.1:1", "job", "list", "--company", "Bad Co"])
    assert code == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("jetjobs: error: company: String should match pattern") and err.count("\n") == 1
