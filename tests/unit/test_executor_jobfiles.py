"""Reading what a job left: globs match as `Path.glob` does without entering links,
and a results file is never read past its limit or parsed into a crash."""

from __future__ import annotations

import os
from pathlib import Path

from executor import jobfiles
from executor.results import MAX_BYTES, RESULT_NAME, read_results

TREE = ["x.txt", ".top.txt", "a/y.txt", "a/b/z.txt", "a/b/c/w.txt", "a/b/c/v.bin", ".h/q.txt"]
PATTERNS = ["*.txt", "**/*.txt", "a/**/*.txt", "a/*/z.txt", "**", "*", "a/b/*", "[ax]*", "**/*.bin"]


def test_globs_match_the_regular_files_path_glob_does(tmp_path: Path) -> None:
    for name in TREE:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    root = jobfiles.open_directory(str(tmp_path))
    try:
        for pattern in PATTERNS:
            found = ["/".join(names) for names in jobfiles.glob(root, pattern)]
            expected = sorted(
                p.relative_to(tmp_path).as_posix() for p in tmp_path.glob(pattern) if p.is_file()
            )
            assert found == expected, pattern
    finally:
        os.close(root)


def test_a_glob_never_enters_a_linked_directory(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "secret.txt").write_text("host")
    job = tmp_path / "job"
    job.mkdir()
    (job / "linked").symlink_to(outside)
    root = jobfiles.open_directory(str(job))
    try:
        assert [jobfiles.glob(root, p) for p in ("linked/*/*.txt", "**/*.txt", "*/deep/*")] == [[], [], []]
    finally:
        os.close(root)


def test_results_past_the_limit_or_nested_too_deep_are_an_error_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / RESULT_NAME).write_text("[" * (MAX_BYTES - 1))
    assert read_results(str(tmp_path)) == {
        "error": "results file nests deeper than JSON can be read here: ignored"
    }
    (tmp_path / RESULT_NAME).write_text('{"a": "' + "x" * MAX_BYTES + '"}')
    assert read_results(str(tmp_path)) == {"error": f"results file larger than {MAX_BYTES} bytes: ignored"}
