"""Everything wrong with a flow definition at once, each problem naming its node:
a user fixing a 50-node file wants the whole list, not one error per try."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from . import conditions

if TYPE_CHECKING:
    from .flows import FlowNode

_UNSAFE = re.compile(r"[^A-Z0-9_]")
SHOWN_CONDITION = 80
"""Characters of a bad condition its refusal quotes (the reason after it must stay readable)."""


class Problem(NamedTuple):
    """One thing wrong, and the node it concerns."""

    node: str
    message: str


def graph_problems(nodes: Sequence[FlowNode], elsewhere: Iterable[str] = ()) -> list[Problem]:
    """Duplicate names, unknown prerequisites, cycles and conditions, in the order of
    the definition. `elsewhere` names nodes defined but invalid on their own: an
    edge to one is not unknown, and a condition whose upstream reaches one is not
    judged on which nodes it reads."""
    by_name: dict[str, FlowNode] = {}
    problems: list[Problem] = []
    for node in nodes:
        if node.name not in by_name:
            by_name[node.name] = node
        elif not any(p.node == node.name for p in problems):
            problems.append(
                Problem(node.name, f"node '{node.name}' is defined twice: node names must be unique")
            )
    outside = set(elsewhere) - set(by_name)
    for node in by_name.values():
        for edge in node.depends:
            if edge.node not in by_name and edge.node not in outside:
                problems.append(
                    Problem(node.name, f"node '{node.name}' depends on unknown node '{edge.node}'")
                )
    problems += _cycles(by_name)
    problems += _conditions(by_name, outside)
    position = {name: i for i, name in enumerate(by_name)}
    return sorted(problems, key=lambda p: position[p.node])


def result_name_problems(names: Iterable[str]) -> list[Problem]:
    """Nodes that would pass their results under the same variables (`a-b` and `a_b`
    both give `JETJOBS_RESULT_A_B_…`): one value would silently hide the other."""
    seen: dict[str, str] = {}
    problems = []
    for name in names:
        prefix = result_prefix(name)
        if prefix in seen and seen[prefix] != name:
            problems.append(
                Problem(
                    name,
                    f"nodes '{seen[prefix]}' and '{name}' would both pass their results as "
                    f"JETJOBS_RESULT_{prefix}_<KEY>: rename one of them",
                )
            )
        seen.setdefault(prefix, name)
    return problems


def result_prefix(text: str) -> str:
    """Upper case, anything but letters, digits and `_` as `_`."""
    return _UNSAFE.sub("_", text.upper())


def ancestors(by_name: dict[str, FlowNode], name: str) -> set[str]:
    """Every node `name` depends on, directly or not (names not in `by_name` included,
    not followed)."""
    seen: set[str] = set()
    todo = [e.node for e in by_name[name].depends]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            if current in by_name:
                todo.extend(e.node for e in by_name[current].depends)
    return seen


def _prerequisites(by_name: dict[str, FlowNode], name: str) -> list[str]:
    return [e.node for e in by_name[name].depends if e.node in by_name]


def _components(by_name: dict[str, FlowNode]) -> list[list[str]]:
    """Strongly connected components (Tarjan's, without recursion: a long chain is
    no deeper to check than a short one)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def enter(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        on_stack.add(name)

    for root in by_name:
        if root in index:
            continue
        enter(root)
        work = [(root, iter(_prerequisites(by_name, root)))]
        while work:
            name, todo = work[-1]
            for up in todo:
                if up not in index:
                    enter(up)
                    work.append((up, iter(_prerequisites(by_name, up))))
                    break
                if up in on_stack:
                    low[name] = min(low[name], index[up])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[name])
                if low[name] == index[name]:
                    cut = len(stack) - 1 - stack[::-1].index(name)
                    found.append(stack[cut:])
                    on_stack.difference_update(stack[cut:])
                    del stack[cut:]
    return found


def _cycles(by_name: dict[str, FlowNode]) -> list[Problem]:
    """One cycle per group of nodes that depend on each other, from the group's first
    node in the definition (`a -> b`: a depends on b)."""
    position = {name: i for i, name in enumerate(by_name)}
    problems = []
    for group in _components(by_name):
        first = min(group, key=position.__getitem__)
        if len(group) == 1 and first not in _prerequisites(by_name, first):
            continue
        lap = _path_back(by_name, first, set(group))
        problems.append(Problem(first, f"node '{first}' depends on itself: cycle {' -> '.join(lap)}"))
    return problems


def _path_back(by_name: dict[str, FlowNode], start: str, group: set[str]) -> list[str]:
    """The shortest way from `start` through its prerequisites back to itself."""
    came_from: dict[str, str] = {}
    todo = deque([start])
    while todo:
        name = todo.popleft()
        for up in _prerequisites(by_name, name):
            if up == start:
                path = [name]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if up in group and up not in came_from:
                came_from[up] = name
                todo.append(up)
    raise AssertionError(f"{start} is in a cycle")


def _conditions(by_name: dict[str, FlowNode], outside: set[str]) -> list[Problem]:
    """Conditions parse and read only prerequisites' results (a node's upstream is
    found only when it has a condition: a long chain without any stays linear)."""
    problems = []
    for node in by_name.values():
        when = [edge.when for edge in node.depends if edge.when is not None]
        if not when:
            continue
        upstream = ancestors(by_name, node.name)
        sure = not (upstream & outside)
        for text in when:
            try:
                tree = conditions.parse(text)
            except conditions.ConditionError as error:
                shown = text if len(text) <= SHOWN_CONDITION else f"{text[:SHOWN_CONDITION]}…"
                problems.append(Problem(node.name, f"node '{node.name}': bad condition {shown!r}: {error}"))
                continue
            for ref in sorted(conditions.refs(tree) - upstream) if sure else ():
                problems.append(
                    Problem(
                        node.name,
                        f"node '{node.name}': condition {text!r} reads node '{ref}', "
                        "which is not one of its prerequisites",
                    )
                )
    return problems
