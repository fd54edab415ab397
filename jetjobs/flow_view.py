"""Reading flow files and drawing a flow run's DAG in the terminal."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from contracts.flowcheck import result_name_problems
from contracts.flows import (
    GRAPH_ERROR,
    Edge,
    FlowRun,
    FlowSpec,
    NodeStatus,
    NodeView,
    listing,
)

from . import render
from .commands import CommandError

MARK = {
    NodeStatus.WAITING: "·",
    NodeStatus.DISPATCHED: "▶",
    NodeStatus.SUCCEEDED: "✔",
    NodeStatus.FAILED: "✘",
    NodeStatus.SKIPPED: "-",
}


def load_flow(path: Path) -> FlowSpec:
    """A flow definition from a YAML or JSON file; CommandError saying what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CommandError(f"cannot read flow file {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise CommandError(f"{path}: not UTF-8 text: save the flow as UTF-8 YAML or JSON") from None
    kind = "JSON" if path.suffix == ".json" else "YAML"
    try:
        data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise CommandError(f"{path}: not valid {kind}: {_one_line(error)}") from None
    except RecursionError:
        raise CommandError(f"{path}: its {kind} nests too deeply to read: flatten it") from None
    try:
        return FlowSpec.model_validate(data)
    except ValidationError as error:
        problems = [_problem(item) for item in error.errors()] + _name_clashes(data)
        raise CommandError(f"{path}: {listing(problems)}") from None


def _problem(error: ErrorDetails) -> str:
    """A graph problem names its node; any other says where it is."""
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == GRAPH_ERROR:
        return message
    return f"{'.'.join(str(p) for p in error['loc']) or 'value'}: {message}"


def _name_clashes(data: Any) -> list[str]:
    """Result variables shared by nodes of a definition that failed other checks: the
    store checks them with the rest of a valid one."""
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(nodes, list):
        return []
    names = [n["name"] for n in nodes if isinstance(n, dict) and isinstance(n.get("name"), str)]
    return [p.message for p in result_name_problems(names)]


def _one_line(error: Exception) -> str:
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {error.problem}"
    return " ".join(str(error).split())


def _levels(spec: FlowSpec) -> dict[str, int]:
    level: dict[str, int] = {}

    def depth(name: str) -> int:
        if name not in level:
            level[name] = 1 + max((depth(e.node) for e in spec.node(name).depends), default=-1)
        return level[name]

    for node in spec.nodes:
        depth(node.name)
    return level


def _edge(edge: Edge) -> str:
    label = edge.node if edge.on == "success" else f"{edge.node} ({edge.on})"
    return f"{label} if {edge.when}" if edge.when else label


EDGES_SHOWN = 10
"""Prerequisites a node's line names; a fan-in of hundreds would fill the screen
(`--json` has them all)."""


def _edges(edges: list[Edge]) -> str:
    named = ", ".join(_edge(e) for e in edges[:EDGES_SHOWN])
    more = len(edges) - EDGES_SHOWN
    return f"← {named} and {more} more" if more > 0 else f"← {named}"


def _line(spec: FlowSpec, view: NodeView | None, name: str, run: bool) -> str:
    """One node, with its status when it is a `run`'s; its job's results and reason
    escaped on a terminal (`render.job_text`)."""
    shown = functools.partial(render.job_text, terminal=sys.stdout.isatty())
    status = view.status if view else NodeStatus.WAITING
    parts = [f"{MARK[status]} {name}" if run else f"  {name}"]
    edges = spec.node(name).depends
    if edges:
        parts.append(_edges(edges))
    if run:
        parts.append(f"[{status.value}{'/' + view.job_status if view and view.job_status else ''}]")
    if view and view.results:
        parts.append(" ".join(f"{shown(k)}={shown(v)}" for k, v in view.results.items()))
    if view and view.reason:
        parts.append(f"({shown(view.reason)})")
    return "  ".join(parts)


def draw(spec: FlowSpec, run: FlowRun | None = None) -> str:
    """Nodes level by level (a node sits one level below its deepest prerequisite)."""
    views = {n.name: n for n in run.nodes} if run else {}
    levels = _levels(spec)
    lines = []
    for depth in range(max(levels.values()) + 1):
        for index, name in enumerate(n.name for n in spec.nodes if levels[n.name] == depth):
            prefix = f"{depth:>3} │ " if index == 0 else "    │ "
            lines.append(prefix + _line(spec, views.get(name), name, run is not None))
    return "\n".join(lines)


def describe_run(run: FlowRun) -> str:
    head = f"flow {run.name} ({run.company})  run {run.id}  {run.status.value}"
    if run.reason:
        head += f": {run.reason}"
    assert run.spec is not None
    return head + "\n" + draw(run.spec, run)
