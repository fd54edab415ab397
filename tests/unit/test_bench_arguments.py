"""The benchmarks refuse, before any server starts, numbers that leave nothing
to measure, a report path they could not write and profiling without py-spy."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.__main__ import main, unwritable
from bench.harness import PROFILE_ENV, profiling_refused
from bench.latency import check_requests
from tests.usage import usage_error


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["e2e", "--jobs", "0"], "argument --jobs: must be at least 1, got 0"),
        (["e2e", "--runs", "0"], "argument --runs: must be at least 1, got 0"),
        (["e2e", "--raw-fraction", "nan"], "argument --raw-fraction: must be a number above 0, got nan"),
        (["store", "--stores", "two"], "argument --stores: expected a whole number, got 'two'"),
        (["latency", "--rate", "-5"], "argument --rate: must be a number above 0, got -5"),
        (["flows", "--nodes", "2"], "argument --nodes: must be at least 3, got 2"),
        (["scheduler", "--seconds", "x"], "argument --seconds: expected a number, got 'x'"),
    ],
)
def test_a_number_that_leaves_nothing_to_measure_is_a_usage_error(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert said in usage_error(main, argv, capsys)


def test_a_rate_and_duration_that_send_nothing_are_refused_before_any_server_starts() -> None:
    with pytest.raises(SystemExit, match=r"--rate 0\.5 for --seconds 1 sends no request"):
        check_requests("latency", 0.5, 1.0)
    check_requests("latency", 1.0, 1.0)  # one request is enough


def test_a_report_path_that_cannot_be_written_is_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("kept\n")
    for out, said in [
        (tmp_path, "is a folder: name a file in it"),
        (blocker / "e2e.json", "is a file, not a folder"),
    ]:
        assert main(["e2e", "--out", str(out)]) == 2
        assert said in capsys.readouterr().err
    assert blocker.read_text() == "kept\n"


def test_an_existing_report_is_left_as_it_is_by_the_check(tmp_path: Path) -> None:
    earlier = tmp_path / "results" / "e2e.json"
    assert unwritable(earlier) is None  # its folder is made, nothing else
    assert list(earlier.parent.iterdir()) == []
    earlier.write_text("{}\n")
    assert unwritable(earlier) is None
    assert earlier.read_text() == "{}\n"


def test_profiling_asked_for_without_py_spy_is_refused_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no py-spy on PATH, nor beside this "Python"
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    assert profiling_refused() is None
    monkeypatch.setenv(PROFILE_ENV, str(tmp_path / "profiles"))
    assert main(["e2e", "--out", str(tmp_path / "e2e.json")]) == 2
    assert f"{PROFILE_ENV} is set, but py-spy is not installed" in capsys.readouterr().err
