"""The exported JSON Schemas carry the instants' bounds the models check (1970 to 9000):
without them a message a client's validation passed, such as one with Go's zero time
(0001-01-01T00:00:00Z) for an unset time, was dead-lettered."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts import schema

BUS_MESSAGES = ("job-message", "job-event", "dead-letter", "flow-start", "flow-event")
GO_ZERO_TIME = "0001-01-01T00:00:00Z"


def _instants(node: Any) -> Iterator[dict[str, Any]]:
    """Every date-time string a schema describes, in its properties and definitions."""
    if isinstance(node, dict):
        if node.get("format") == "date-time":
            yield node
        for value in node.values():
            yield from _instants(value)
    elif isinstance(node, list):
        for item in node:
            yield from _instants(item)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("schemas")
    schema.export(directory)
    return directory


@pytest.mark.parametrize("name", BUS_MESSAGES)
def test_every_instant_of_a_bus_message_refuses_go_zero_time(exported: Path, name: str) -> None:
    instants = list(_instants(json.loads((exported / f"{name}.schema.json").read_text())))
    assert instants, f"{name} has no instant"
    for instant in instants:
        pattern = instant.get("pattern")
        assert pattern, f"{name}: {instant} has no bounds"
        assert not re.search(pattern, GO_ZERO_TIME)
        assert "1970-01-01T00:00:00Z" in instant["description"]


@pytest.mark.parametrize(
    ("instant", "allowed"),
    [
        ("1970-01-01T00:00:00Z", True),
        ("2024-02-29T12:00:00.5+01:00", True),
        ("9000-12-31T23:59:59.999999Z", True),
        (GO_ZERO_TIME, False),
        ("1969-12-31T23:59:59Z", False),
        ("9001-01-01T00:00:00Z", False),
        ("9999-12-31T23:59:59Z", False),
        ("+10000-01-01T00:00:00Z", False),
    ],
)
def test_the_exported_pattern_keeps_the_models_years(exported: Path, instant: str, allowed: bool) -> None:
    job = json.loads((exported / "job-message.schema.json").read_text())
    pattern = job["properties"]["dispatched_at"]["pattern"]
    assert bool(re.search(pattern, instant)) is allowed
