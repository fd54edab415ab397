"""Reading what a job left: globs match as `Path.glob` does without entering links,
and list what they neither read nor enter; a results file is never read past its
limit or parsed into a crash."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from contracts.models import ArtifactSpec
from executor import jobfiles
from executor.artifacts import MISSING, UNREAD_NOTES, Limits, collect
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
            found = ["/".join(names) for names in jobfiles.glob(root, pattern).files]
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
        found = [jobfiles.glob(root, p) for p in ("linked/*/*.txt", "**/*.txt", "*/deep/*")]
        assert [m.files for m in found] == [[], [], []]
        assert [m.unread for m in found] == [  # the link, with what was looked for in it
            [("linked", "*", "*.txt")],
            [],  # `**` goes into real directories only
            [("linked", "deep", "*")],
        ]
    finally:
        os.close(root)


def leave_what_is_not_regular(job: Path, outside: Path) -> None:
    """A FIFO, a socket, a link to /dev/zero, a linked directory, a real directory and a file."""
    (outside / "secret.txt").write_text("host")
    os.mkfifo(job / "fifo.bin")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(job / "socket.bin"))
    (job / "zero.bin").symlink_to("/dev/zero")
    (job / "linked").symlink_to(outside)
    (job / "folder.bin").mkdir()
    (job / "kept.bin").write_bytes(b"kept")


def test_a_glob_lists_the_entries_it_neither_reads_nor_enters(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "job").mkdir()
    leave_what_is_not_regular(tmp_path / "job", tmp_path / "outside")
    root = jobfiles.open_directory(str(tmp_path / "job"))
    try:
        assert jobfiles.glob(root, "*.bin") == jobfiles.Matches(
            [("kept.bin",)], [("fifo.bin",), ("socket.bin",), ("zero.bin",)]
        )
        # a link is not followed, so one to a file is not told from one to a directory
        assert jobfiles.glob(root, "*/secret.txt") == jobfiles.Matches(
            [], [("linked", "secret.txt"), ("zero.bin", "secret.txt")]
        )
        assert jobfiles.glob(root, "**") == jobfiles.Matches([], [])  # it matches directories only
    finally:
        os.close(root)


def test_a_globs_matches_that_are_not_regular_files_are_recorded_never_read(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "job").mkdir()
    leave_what_is_not_regular(tmp_path / "job", tmp_path / "outside")
    specs = [ArtifactSpec(path="*.bin"), ArtifactSpec(path="**/secret.txt")]
    found = {item.path: item for item in collect(str(tmp_path / "job"), specs, Limits())}
    assert {path: item.note for path, item in found.items()} == {
        "kept.bin": None,
        "fifo.bin": "a FIFO, not a regular file: not stored",
        "socket.bin": "a socket, not a regular file: not stored",
        "zero.bin": "a symbolic link, not a regular file: not stored",
        "**/secret.txt": MISSING,
    }
    assert found["kept.bin"].content == b"kept"
    assert all(item.content is None for path, item in found.items() if path != "kept.bin")


def test_a_glob_matching_many_links_lists_a_bounded_number_and_counts_the_rest(tmp_path: Path) -> None:
    extra = 7
    for number in range(UNREAD_NOTES + extra):
        (tmp_path / f"link{number:04}.txt").symlink_to("/dev/zero")
    (tmp_path / "kept.txt").write_text("kept")
    specs = [ArtifactSpec(path="*.txt"), ArtifactSpec(path="link*")]
    found = collect(str(tmp_path), specs, Limits())
    links = [item for item in found if item.path.startswith("link0")]
    assert len(links) == UNREAD_NOTES
    assert all(item.note == "a symbolic link, not a regular file: not stored" for item in links)
    assert [item.content for item in found if item.path == "kept.txt"] == [b"kept"]
    counted = {item.path: item.note for item in found if item.path in ("*.txt", "link*")}
    assert counted == {
        pattern: f"{count} more matches of this glob are not regular files (links, FIFOs, devices, "
        f"sockets), or links it does not enter: past the {UNREAD_NOTES} an attempt lists, not listed and not stored"
        for pattern, count in (("*.txt", extra), ("link*", UNREAD_NOTES + extra))
    }
    assert len(found) == UNREAD_NOTES + 3


def test_results_past_the_limit_or_nested_too_deep_are_an_error_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / RESULT_NAME).write_text("[" * (MAX_BYTES - 1))
    assert read_results(str(tmp_path)) == {
        "error": "results file nests deeper than JSON can be read here: ignored"
    }
    (tmp_path / RESULT_NAME).write_text('{"a": "' + "x" * MAX_BYTES + '"}')
    assert read_results(str(tmp_path)) == {"error": f"results file larger than {MAX_BYTES} bytes: ignored"}
