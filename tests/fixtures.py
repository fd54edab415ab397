"""Locating the MultiFlexi app fixtures: the shared ones beside the repository
when present, else the copy in `tests/data`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

SHARED_APPS = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "multiflexi-apps"
OWN_APPS = Path(__file__).resolve().parent / "data" / "multiflexi-apps"
APPS_DIR = SHARED_APPS if any(SHARED_APPS.glob("*.json")) else OWN_APPS


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
