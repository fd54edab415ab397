"""What a job wrote, as the CLI prints it: shown rather than obeyed on a terminal,
as written (but for NUL) anywhere else; and the demo's lines with whole job ids."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

from contracts.enums import ErrorKind, Status
from contracts.messages import JobEvent
from contracts.records import AttemptRecord, JobRecord
from jetjobs.demo import describe_outcome
from jetjobs.render import job_detail, job_text, table

HOSTILE = "\x1b]0;owned\x07\x1b[31mred\x1b[0m\x1b]52;c;cm0gLXJmIH4=\x07nul\x00del\x7fcsi\u009b2J\b"
JOB_ID = "0a300879-4c1e-4b59-9d0e-6f2a1c3b5d7e"


def test_on_a_terminal_every_control_is_shown_in_cat_v_notation() -> None:
    assert job_text(HOSTILE, terminal=True) == (
        "^[]0;owned^G^[[31mred^[[0m^[]52;c;cm0gLXJmIH4=^Gnul^@del^?csiM-^[2J^H"
    )


def test_on_a_terminal_line_breaks_tabs_and_carriage_returns_stay() -> None:
    text = "a\tb\r\nprogress 10%\rprogress 99%\n"
    assert job_text(text, terminal=True) == text


def test_on_a_terminal_no_control_character_is_left_but_those_kept() -> None:
    every = "".join(chr(code) for code in range(0x100))
    shown = job_text(every, terminal=True)
    assert {c for c in shown if unicodedata.category(c) == "Cc"} == {"\n", "\t", "\r"}
    assert "é" in shown and "\u00a0" in shown  # printable Latin-1 stays as it is


def test_piped_output_is_as_written_but_for_nul() -> None:
    assert job_text(HOSTILE, terminal=False) == HOSTILE.replace("\x00", "\ufffd")


def test_job_show_escapes_output_results_and_reason_on_a_terminal_only() -> None:
    job = JobRecord(
        id=JOB_ID,
        company="acme",
        status=Status.ERROR,
        kind=ErrorKind.EXIT,
        attempt=1,
        final=True,
        argv=["sh", "-c", "echo \x1b[2J"],
        reason="exit \x1b[2J",
        stdout="out \x1b]0;owned\x07",
        stderr="err \x1b[31m",
        attempts=[AttemptRecord(attempt=1, status=Status.ERROR, results={"k\x1b": "v\x1b]52;c;eA==\x07"})],
    )
    shown = job_detail(job, terminal=True)
    assert "\x1b" not in shown and "\x07" not in shown
    for line in (
        "argv       sh -c echo ^[[2J",
        "reason     exit ^[[2J",
        "out ^[]0;owned^G",
        "err ^[[31m",
        "k^[=v^[]52;c;eA==^G",
    ):
        assert line in shown, shown
    assert "out \x1b]0;owned\x07" in job_detail(job, terminal=False)


def test_a_demo_line_gives_the_whole_job_id_and_escapes_its_output() -> None:
    now = datetime.now(UTC)
    event = JobEvent(
        job_id=JOB_ID,
        company="demo",
        attempt=1,
        status=Status.PROCESSED,
        at=now,
        exit_code=0,
        begin=now,
        end=now,
        stdout="Hello \x1b]0;owned\x07from jetjobs\nsecond line",
        final=True,
    )
    line = describe_outcome(event, terminal=True)
    assert f" job {JOB_ID} processed (exit 0) in 0.000s: Hello ^[]0;owned^Gfrom jetjobs" in line, line
    assert line.endswith("from jetjobs")


def test_a_table_cell_shows_control_characters_instead_of_breaking_lines_or_obeying_them() -> None:
    """A company named through the API with a newline, a tab or an escape sequence broke
    `company list` into extra lines and coloured the terminal of whoever listed it."""
    drawn = table([("acme", "A\nB\tC\x1b[31m")], ["code", "name"])
    assert drawn.splitlines() == ["CODE  NAME", "acme  A^JB^IC^[[31m"]
