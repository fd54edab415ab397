"""How `flow validate` and `flow show` draw a flow's DAG (pure rendering, no servers)."""

from __future__ import annotations

from contracts.flows import FlowSpec
from jetjobs.flow_view import draw


def _fan_in(width: int) -> FlowSpec:
    nodes = [{"name": f"w{i}", "app": "1"} for i in range(width)]
    sink = {"name": "sink", "app": "1", "depends": [{"node": f"w{i}", "on": "always"} for i in range(width)]}
    return FlowSpec.model_validate({"name": "wide", "company": "acme", "nodes": [*nodes, sink]})


def test_a_definition_is_drawn_without_run_statuses() -> None:
    drawn = draw(_fan_in(2))
    assert "[" not in drawn, drawn
    assert drawn.splitlines()[-1] == "  1 │   sink  ← w0 (always), w1 (always)"


def test_a_wide_fan_in_names_ten_prerequisites_and_counts_the_rest() -> None:
    last = draw(_fan_in(300)).splitlines()[-1]
    named = ", ".join(f"w{i} (always)" for i in range(10))
    assert last == f"  1 │   sink  ← {named} and 290 more"
