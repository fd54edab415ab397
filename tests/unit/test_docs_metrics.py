"""Every metric the documentation names is one a service serves, under the name
/metrics shows (a counter's with `_total`)."""

from __future__ import annotations

import re
from pathlib import Path

from bus.telemetry import Telemetry
from contracts import subjects
from executor.metrics import ExecutorMetrics
from jetjobs.embedded import PG_SYSTEM_USER
from scheduler.metrics import SchedulerMetrics
from store.metrics import StoreMetrics
from store.queries import FLOW_INBOX_CHANNEL

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

NOT_METRICS = {
    FLOW_INBOX_CHANNEL,
    PG_SYSTEM_USER,
    *(value for value in vars(subjects).values() if isinstance(value, str) and value.startswith("jetjobs_")),
}
"""The other `jetjobs_…` names the documentation speaks of: buckets, a Postgres channel, a user."""

SERIES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("", "_bucket", "_sum", "_count"),
    "info": ("_info",),
}
"""The names under which /metrics shows a family of each type (a histogram by its family name too)."""


def served() -> set[str]:
    telemetry = Telemetry()
    StoreMetrics(telemetry)
    SchedulerMetrics(telemetry.registry)
    ExecutorMetrics(telemetry, "default")
    return {family.name + suffix for family in telemetry.registry.collect() for suffix in SERIES[family.type]}


def test_every_metric_the_documentation_names_is_served() -> None:
    names = served()
    unknown = {
        f"{document.name}: {name}"
        for document in DOCUMENTS
        for name in re.findall(r"\bjetjobs_\w+", document.read_text())
        if name not in NOT_METRICS and name not in names
    }
    assert not unknown, sorted(unknown)
