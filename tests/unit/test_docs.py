"""Documentation that must not drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

from contracts.states import TRANSITIONS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_lifecycle_diagram_matches_transitions() -> None:
    text = (DOCS / "lifecycle.md").read_text()
    edges = set(re.findall(r"^\s+(\w+) --> (\w+)$", text, flags=re.M))
    expected = {(s.value, t.value) for s, targets in TRANSITIONS.items() for t in targets}
    assert edges == expected
