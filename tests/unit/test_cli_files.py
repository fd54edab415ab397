"""Files a user hands the CLI (a flow, an app) that cannot be read are refused with
a line naming the file and what is wrong, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from jetjobs.commands import CommandError, read_app_file
from jetjobs.flow_view import load_flow


@pytest.mark.parametrize(
    ("name", "content", "said"),
    [
        ("deep.yaml", b"a: " + b"[" * 100_000, "its YAML nests too deeply to read: flatten it"),
        ("deep.json", b"[" * 100_000, "its JSON nests too deeply to read: flatten it"),
        ("binary.yaml", b"\xff\xfe\x00name", "not UTF-8 text"),
    ],
)
def test_a_flow_file_too_deep_or_not_text_is_refused_naming_it(
    tmp_path: Path, name: str, content: bytes, said: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CommandError, match=said) as refused:
        load_flow(path)
    assert str(path) in str(refused.value)


@pytest.mark.parametrize(
    ("content", "said"),
    [(b"[" * 100_000, "its JSON nests too deeply to read: flatten it"), (b"\xff\xfe{}", "not UTF-8 text")],
)
def test_an_app_file_too_deep_or_not_text_is_refused_naming_it(
    tmp_path: Path, content: bytes, said: str
) -> None:
    path = tmp_path / "app.json"
    path.write_bytes(content)
    with pytest.raises(CommandError, match=said) as refused:
        read_app_file(path)
    assert str(path) in str(refused.value)
