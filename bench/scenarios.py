"""The scenarios `python -m bench` knows, by name."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

BUILT_IN = {
    "e2e": "bench.e2e",
    "latency": "bench.latency",
    "store": "bench.ingest",
    "peers": "bench.peers",
    "output": "bench.output",
}
OPTIONAL = {"scheduler": "bench.scheduler", "flows": "bench.flows"}
"""Scenarios that live in their own module and are listed when it exists."""


def available() -> dict[str, str]:
    """Scenario name → module name, for every scenario present."""
    found = dict(BUILT_IN)
    for name, module in OPTIONAL.items():
        if importlib.util.find_spec(module) is not None:
            found[name] = module
    return found


def load(module: str) -> ModuleType:
    return importlib.import_module(module)
