"""Reading the results file a job leaves behind."""

from __future__ import annotations

from pathlib import Path

from executor.results import RESULT_NAME, read_results, with_result_file


def test_the_result_file_is_in_the_jobs_working_directory(tmp_path: Path) -> None:
    env = with_result_file({"A": "1"}, str(tmp_path))
    assert env == {"A": "1", "JETJOBS_RESULT_FILE": str(tmp_path / RESULT_NAME)}


def test_values_become_text_and_missing_file_means_no_results(tmp_path: Path) -> None:
    assert read_results(str(tmp_path)) == {}
    (tmp_path / RESULT_NAME).write_text('{"rows": 7, "ok": true, "name": "x", "list": [1]}')
    assert read_results(str(tmp_path)) == {"rows": "7", "ok": "true", "name": "x", "list": "[1]"}


def test_a_broken_file_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / RESULT_NAME).write_text("not json")
    assert read_results(str(tmp_path))["error"].startswith("results file is not JSON")
    (tmp_path / RESULT_NAME).write_text("[1, 2]")
    assert read_results(str(tmp_path)) == {"error": "results file must hold a JSON object"}
