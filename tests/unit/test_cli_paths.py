"""Files and folders a user names are checked before anything else, in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from jetjobs.cli import main

NOWHERE = "nats://127.0.0.1:1"


def test_schema_export_into_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    in_the_way = tmp_path / "schemas"
    in_the_way.write_text("keep me")
    assert main(["schema", "export", str(in_the_way)]) == 1
    assert (
        capsys.readouterr().err
        == f"jetjobs: error: schema export {in_the_way}: a file is in the way; give a folder\n"
    )
    assert main(["schema", "export", str(in_the_way / "sub")]) == 1
    assert "cannot make the folder: Not a directory" in capsys.readouterr().err
    assert in_the_way.read_text() == "keep me"


def test_an_app_file_that_cannot_be_read_is_named_before_nats_is_tried(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "app.json"
    assert main(["--nats-url", NOWHERE, "app", "import", str(missing)]) == 1
    assert capsys.readouterr().err == f"jetjobs: error: {missing}: cannot read: No such file or directory\n"
    missing.write_text("{not json")
    assert main(["--nats-url", NOWHERE, "app", "import", str(missing)]) == 1
    assert capsys.readouterr().err.startswith(f"jetjobs: error: {missing}: not valid JSON:")
