"""What a flow run does next: pure decisions from node states and results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from . import conditions
from .flows import DONE, Edge, FlowSpec, FlowStatus, NodeStatus, ancestors, result_var

_MATCHES = {
    "success": {NodeStatus.SUCCEEDED},
    "failure": {NodeStatus.FAILED},
    "always": {NodeStatus.SUCCEEDED, NodeStatus.FAILED},
}


@dataclass(frozen=True)
class Step:
    """Nodes to dispatch now and nodes that can never run (with why)."""

    dispatch: list[str]
    skip: dict[str, str]


def _edge_holds(edge: Edge, states: Mapping[str, NodeStatus], results: conditions.Results) -> bool:
    if states[edge.node] not in _MATCHES[edge.on]:
        return False
    return edge.when is None or conditions.evaluate(conditions.parse(edge.when), results)


def _blocked(
    spec: FlowSpec, name: str, states: Mapping[str, NodeStatus], results: conditions.Results
) -> str | None:
    for edge in spec.node(name).depends:
        if states[edge.node] in DONE and not _edge_holds(edge, states, results):
            why = f"on: {edge.on}" if states[edge.node] not in _MATCHES[edge.on] else f"when: {edge.when}"
            return f"{edge.node} ended {states[edge.node].value}, edge needs {why}"
    return None


def advance(spec: FlowSpec, states: Mapping[str, NodeStatus], results: conditions.Results) -> Step:
    """Waiting nodes whose every edge now holds are dispatched; those with an edge
    that can no longer hold are skipped, which may in turn skip their dependants."""
    current = dict(states)
    skip: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for node in spec.nodes:
            if current[node.name] is not NodeStatus.WAITING:
                continue
            reason = _blocked(spec, node.name, current, results)
            if reason is not None:
                current[node.name] = NodeStatus.SKIPPED
                skip[node.name] = reason
                changed = True
    dispatch = [
        node.name
        for node in spec.nodes
        if current[node.name] is NodeStatus.WAITING
        and all(_edge_holds(e, current, results) for e in node.depends)
    ]
    return Step(dispatch, skip)


def outcome(states: Mapping[str, NodeStatus]) -> tuple[FlowStatus, str | None] | None:
    """The end of the run once every node is done; None while any is not."""
    if any(status not in DONE for status in states.values()):
        return None
    failed = sorted(name for name, status in states.items() if status is NodeStatus.FAILED)
    if failed:
        return FlowStatus.ERROR, f"node(s) failed: {', '.join(failed)}"
    return FlowStatus.FINISHED, None


def node_env(spec: FlowSpec, name: str, results: conditions.Results) -> dict[str, str]:
    """Flow env < node env < results of every upstream node as `JETJOBS_RESULT_<NODE>_<KEY>`."""
    env = {**spec.env_vars, **spec.node(name).env}
    for upstream in sorted(ancestors(spec.by_name, name)):
        for key, value in results.get(upstream, {}).items():
            env[result_var(upstream, key)] = value
    return env


def retry_states(states: Mapping[str, NodeStatus]) -> dict[str, NodeStatus]:
    """For `flow retry`: failed and skipped nodes wait again, the rest keep their state."""
    return {
        name: NodeStatus.WAITING if status in (NodeStatus.FAILED, NodeStatus.SKIPPED) else status
        for name, status in states.items()
    }
