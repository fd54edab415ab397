"""Files and folders a user names are checked before anything else, in one line
(the real command in a subprocess: it sets up logging for its whole process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

NOWHERE = "nats://127.0.0.1:1"


def jetjobs(*args: str) -> tuple[int, str]:
    """Exit status and stderr of `python -m jetjobs ARGS`; nothing on stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "jetjobs", *args], capture_output=True, text=True, timeout=60
    )
    assert done.stdout == ""
    return done.returncode, done.stderr


def test_schema_export_into_a_file_is_refused(tmp_path: Path) -> None:
    in_the_way = tmp_path / "schemas"
    in_the_way.write_text("keep me")
    assert jetjobs("schema", "export", str(in_the_way)) == (
        1,
        f"jetjobs: error: schema export {in_the_way}: a file is in the way; give a folder\n",
    )
    code, err = jetjobs("schema", "export", str(in_the_way / "sub"))
    assert code == 1 and err.endswith("cannot make the folder: Not a directory\n")
    assert in_the_way.read_text() == "keep me"


def test_an_app_file_that_cannot_be_read_is_named_before_nats_is_tried(tmp_path: Path) -> None:
    missing = tmp_path / "app.json"
    assert jetjobs("--nats-url", NOWHERE, "app", "import", str(missing)) == (
        1,
        f"jetjobs: error: {missing}: cannot read: No such file or directory\n",
    )
    missing.write_text("{not json")
    code, err = jetjobs("--nats-url", NOWHERE, "app", "import", str(missing))
    assert code == 1 and err.startswith(f"jetjobs: error: {missing}: not valid JSON:")


def test_a_filter_a_request_cannot_hold_is_one_line_before_connecting() -> None:
    code, err = jetjobs("--nats-url", NOWHERE, "job", "list", "--company", "Bad Co")
    assert code == 1
    assert err.startswith("jetjobs: error: company: String should match pattern") and err.count("\n") == 1
