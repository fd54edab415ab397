"""Locating the shared MultiFlexi app fixtures beside the repository."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

APPS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "multiflexi-apps"


def app_files() -> list[Path]:
    """Every real MultiFlexi app file, or a skip when the fixtures are absent."""
    files = sorted(APPS_DIR.glob("*.json"))
    if not files:
        pytest.skip(f"MultiFlexi fixtures not found in {APPS_DIR}")
    return files


def load_app(name: str) -> dict[str, Any]:
    """One fixture document by file stem prefix, e.g. 'price_fixer'."""
    for path in app_files():
        if path.name.startswith(name):
            return json.loads(path.read_text())  # type: ignore[no-any-return]
    pytest.skip(f"fixture {name} not found in {APPS_DIR}")
