"""Commands that need no server: their `--json` form, their one-line refusals
before connecting, and output to a reader that left (the real command in a
subprocess: it sets up logging for its whole process)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

NOWHERE = "nats://127.0.0.1:1"
FLOW = """
name: nightly
company: acme
nodes:
  - {name: fetch, app: "1"}
  - {name: load, app: "1", depends: [fetch]}
"""


def jetjobs(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jetjobs", "--nats-url", NOWHERE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def refused(done: subprocess.CompletedProcess[str], expected: str) -> None:
    assert (done.returncode, done.stdout) == (1, ""), done
    assert done.stderr == f"jetjobs: error: {expected}\n"


def test_new_key_as_json() -> None:
    done = jetjobs("credentials", "new-key", "--json")
    assert done.returncode == 0, done
    assert len(base64.b64decode(json.loads(done.stdout)["key"])) == 32


def test_schema_export_as_json(tmp_path: Path) -> None:
    done = jetjobs("--json", "schema", "export", str(tmp_path / "out"))
    assert done.returncode == 0, done
    reply = json.loads(done.stdout)
    assert reply["directory"] == str(tmp_path / "out")
    assert str(tmp_path / "out" / "job-message.schema.json") in reply["files"]
    assert all(Path(f).is_file() for f in reply["files"])


def test_an_offline_flow_check_as_json_is_the_online_reply(tmp_path: Path) -> None:
    path = tmp_path / "nightly.yaml"
    path.write_text(FLOW)
    done = jetjobs("flow", "validate", "--offline", str(path), "--json")
    assert done.returncode == 0, done
    assert json.loads(done.stdout) == {"name": "nightly", "company": "acme", "order": ["fetch", "load"]}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["events", "--company", "Bad>"],
            "--company 'Bad>' is not valid: use up to 32 lowercase letters, digits, '_' or '-', "
            "starting with a letter or digit",
        ),
        (
            ["company", "create", ""],
            "company code '' is not valid: use up to 32 lowercase letters, digits, '_' or '-', "
            "starting with a letter or digit",
        ),
        (
            ["company", "create", "acme", "--name", ""],
            "--name is empty: give a display name, or leave --name out to use the code",
        ),
        (
            ["credentials", "set", "acme", "abra"],
            "no values for acme/abra: give at least one KEY=VALUE or --from-env NAME",
        ),
        (
            ["company", "consumer", "acme", "--pool", "Big Pool"],
            "pool 'Big Pool' is not valid: use up to 32 lowercase letters, digits, '_' or '-', "
            "starting with a letter or digit",
        ),
    ],
)
def test_bad_input_is_one_line_before_connecting(argv: list[str], expected: str) -> None:
    refused(jetjobs(*argv), expected)


def _to_a_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """The command writing into a pipe whose reader has gone, like `| head -1` once it has its line."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "jetjobs", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write)


@pytest.mark.parametrize(
    "argv",
    [["credentials", "new-key"], ["schema", "export", "{tmp}"], ["--json", "schema", "export", "{tmp}"]],
)
def test_a_reader_that_left_ends_the_command_quietly(argv: list[str], tmp_path: Path) -> None:
    done = _to_a_closed_pipe(*(a.format(tmp=tmp_path) for a in argv))
    assert (done.returncode, done.stderr) == (1, "")


def test_an_offline_flow_check_refuses_nodes_whose_results_would_collide(tmp_path: Path) -> None:
    path = tmp_path / "clash.yaml"
    path.write_text(FLOW.replace("name: load", "name: Fetch"))
    refused(
        jetjobs("flow", "validate", "--offline", str(path)),
        f"{path}: nodes 'fetch' and 'Fetch' would both pass their results as JETJOBS_RESULT_FETCH_<KEY>: "
        "rename one of them",
    )
