"""What a flow run does next: pure decisions from node states and results."""

from __future__ import annotations

import functools
import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from . import conditions
from .flowcheck import ancestors
from .flows import DONE, Edge, FlowSpec, FlowStatus, NodeStatus, result_var

_MATCHES = {
    "success": {NodeStatus.SUCCEEDED},
    "failure": {NodeStatus.FAILED},
    "always": {NodeStatus.SUCCEEDED, NodeStatus.FAILED},
}


NAMED_FAILURES = 10
"""Failed nodes a run's reason names: a wide flow may fail a thousand (`flow show` lists them all)."""


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
    edges: Iterable[Edge], states: Mapping[str, NodeStatus], results: conditions.Results
) -> str | None:
    for edge in edges:
        if states[edge.node] in DONE and not _edge_holds(edge, states, results):
            why = f"on: {edge.on}" if states[edge.node] not in _MATCHES[edge.on] else f"when: {edge.when}"
            return f"{edge.node} ended {states[edge.node].value}, edge needs {why}"
    return None


ALL_EDGES = -1
"""In the work list of `advance`: look at every edge of the node, not just one."""


def advance(
    spec: FlowSpec,
    states: Mapping[str, NodeStatus],
    results: conditions.Results,
    changed: Iterable[str] | None = None,
) -> Step:
    """Waiting nodes whose every edge now holds are dispatched; those with an edge
    that can no longer hold are skipped, which may in turn skip their dependants.
    Only the edges leaving the `changed` nodes are looked at (every edge when None,
    as a run starts or is retried), so a step costs what it touches, not the
    run's size: an edge that held before still holds, unless a condition on the
    node reads results that just came (then all its edges are looked at)."""
    current = dict(states)
    position = spec.position
    todo: list[tuple[int, int, str]] = (
        [(position[n.name], ALL_EDGES, n.name) for n in spec.nodes]
        if changed is None
        else [(position[d], index, d) for c in changed for d, index in spec.dependants[c]]
    )
    heapq.heapify(todo)  # in the definition's order, so a skip's reason does not depend on what changed
    skip: dict[str, str] = {}
    ready: set[str] = set()
    while todo:
        _, index, name = heapq.heappop(todo)
        if current[name] is not NodeStatus.WAITING:
            continue
        depends = spec.node(name).depends
        edges = depends if index == ALL_EDGES or name in spec.conditional else (depends[index],)
        reason = _blocked(edges, current, results)
        if reason is None:
            ready.add(name)
            continue
        current[name] = NodeStatus.SKIPPED
        skip[name] = reason
        for dependant, edge in spec.dependants[name]:
            heapq.heappush(todo, (position[dependant], edge, dependant))
    in_order = functools.partial(sorted, key=position.__getitem__)
    dispatch = [
        name
        for name in in_order(ready)
        if current[name] is NodeStatus.WAITING
        and all(_edge_holds(e, current, results) for e in spec.node(name).depends)
    ]
    return Step(dispatch, {name: skip[name] for name in in_order(skip)})


def outcome(
    states: Mapping[str, NodeStatus], position: Mapping[str, int] | None = None
) -> tuple[FlowStatus, str | None] | None:
    """The end of the run once every node is done; None while any is not. Its reason
    names the failed nodes in the definition's order (`position`), else by name."""
    if any(status not in DONE for status in states.values()):
        return None
    order = None if position is None else position.__getitem__
    failed = sorted((name for name, status in states.items() if status is NodeStatus.FAILED), key=order)
    if not failed:
        return FlowStatus.FINISHED, None
    more = f" and {len(failed) - NAMED_FAILURES} more" if len(failed) > NAMED_FAILURES else ""
    return FlowStatus.ERROR, f"node(s) failed: {', '.join(failed[:NAMED_FAILURES])}{more}"


def node_env(spec: FlowSpec, name: str, results: conditions.Results) -> dict[str, str]:
    """Flow env < node env < results of every upstream node as `JETJOBS_RESULT_<NODE>_<KEY>`."""
    env = {**spec.env_vars, **spec.node(name).env}
    if not any(results.values()):  # nothing to pass on: spare the walk up a long chain
        return env
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
