"""The example app of the README, run as an executor runs it: its result is a number a
flow condition compares, and an empty REPORT_PATH reports `/` as its default says."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from contracts import conditions
from contracts.dispatch import expand_argv
from executor.results import read_results, with_result_file

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "disk-report.multiflexi.app.json"


def run_example(report_path: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    document = json.loads(EXAMPLE.read_text())
    argv = expand_argv(document["executable"], document["cmdparamsTemplate"], {"REPORT_PATH": report_path})
    env = with_result_file({"PATH": os.environ["PATH"]}, str(cwd))
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize("report_path", ["/", "", "/tmp"])
def test_the_example_reports_used_percent_as_a_number(report_path: str, tmp_path: Path) -> None:
    done = run_example(report_path, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Filesystem") and (tmp_path / "disk-report.txt").is_file()
    results = read_results(str(tmp_path))
    assert float(results["used_percent"]) >= 0, results
    holds = conditions.evaluate(conditions.parse("fetch.used_percent >= 0"), {"fetch": results})
    assert holds, results


def test_a_path_that_does_not_exist_fails_without_a_result(tmp_path: Path) -> None:
    done = run_example("/no/such/folder", tmp_path)
    assert done.returncode != 0 and "/no/such/folder" in done.stderr
    assert read_results(str(tmp_path)) == {}
