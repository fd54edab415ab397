"""Flow definitions, the condition language and the pure orchestration steps."""

from __future__ import annotations

import random
from typing import Any

import pytest
from pydantic import ValidationError

from contracts import conditions
from contracts.enums import Status
from contracts.flowplan import advance, node_env, outcome, retry_states
from contracts.flows import (
    FlowError,
    FlowSpec,
    NodeStatus,
    check_graph,
    check_result_names,
    flow_job_id,
    node_outcome,
    result_var,
)
from contracts.messages import JobEvent

W, D, S, F, K = (
    NodeStatus.WAITING,
    NodeStatus.DISPATCHED,
    NodeStatus.SUCCEEDED,
    NodeStatus.FAILED,
    NodeStatus.SKIPPED,
)


def spec(*nodes: dict[str, Any]) -> FlowSpec:
    return FlowSpec.model_validate({"name": "f", "company": "acme", "nodes": list(nodes)})


def n(name: str, *depends: Any) -> dict[str, Any]:
    return {"name": name, "app": "x", "depends": list(depends)}


def diamond() -> FlowSpec:
    return spec(n("a"), n("b", "a"), n("c", "a"), n("d", "b", "c"))


def test_diamond_waits_for_both_branches() -> None:
    flow = diamond()
    assert advance(flow, dict(a=W, b=W, c=W, d=W), {}).dispatch == ["a"]
    assert advance(flow, dict(a=S, b=W, c=W, d=W), {}).dispatch == ["b", "c"]
    assert advance(flow, dict(a=S, b=S, c=D, d=W), {}).dispatch == []
    assert advance(flow, dict(a=S, b=S, c=S, d=W), {}).dispatch == ["d"]
    assert outcome(dict(a=S, b=S, c=S, d=S)) == ("finished", None)


def test_failure_skips_success_dependants_and_runs_failure_branch() -> None:
    flow = spec(n("a"), n("b", "a"), n("c", "b"), n("fix", {"node": "a", "on": "failure"}))
    step = advance(flow, dict(a=F, b=W, c=W, fix=W), {})
    assert step.dispatch == ["fix"]
    assert set(step.skip) == {"b", "c"}
    status, reason = outcome(dict(a=F, b=K, c=K, fix=S)) or (None, None)
    assert status == "error" and reason is not None and "a" in reason
    again = retry_states(dict(a=F, b=K, c=K, fix=S))
    assert again == dict(a=W, b=W, c=W, fix=S)
    assert advance(flow, again, {}).dispatch == ["a"]


@pytest.mark.parametrize("seed", range(40))
def test_a_step_from_the_nodes_that_ended_decides_as_one_over_the_whole_run(seed: int) -> None:
    """Random DAGs with every kind of edge, some with conditions on results of other
    prerequisites, run to the end with random outcomes: the step that looks only at
    the edges leaving the ended nodes agrees with the one that looks at every edge."""
    rng = random.Random(seed)
    nodes = []
    for i in range(30):
        depends: list[dict[str, Any]] = [
            {"node": f"n{j}", "on": rng.choice(["success", "failure", "always"])}
            for j in rng.sample(range(i), min(i, rng.randint(0, 3)))
        ]
        for edge in depends:
            if rng.random() < 0.3:
                edge["when"] = f"{rng.choice(depends)['node']}.v {rng.choice(['==', '!='])} 1"
        nodes.append(n(f"n{i}", *depends))
    flow = spec(*nodes)
    states = {node.name: W for node in flow.nodes}
    results: dict[str, dict[str, str]] = {}
    changed: list[str] | None = None
    while True:
        step = advance(flow, states, results, changed)
        assert step == advance(flow, states, results)
        states |= dict.fromkeys(step.skip, K) | dict.fromkeys(step.dispatch, D)
        running = [name for name, status in states.items() if status is D]
        if not running:
            break
        changed = rng.sample(running, rng.randint(1, len(running)))
        states |= {name: rng.choice([S, F]) for name in changed}
        results |= {name: {"v": rng.choice(["0", "1"])} for name in changed if states[name] is S}
    assert all(status in (S, F, K) for status in states.values())


def test_yaml_on_key_read_as_true_is_accepted() -> None:
    flow = spec(n("a"), n("b", {"node": "a", True: "always"}))
    assert flow.node("b").depends[0].on == "always"


def test_an_app_id_yaml_reads_as_a_number_is_accepted() -> None:
    flow = FlowSpec.model_validate({"name": "f", "company": "acme", "nodes": [{"name": "a", "app": 1}]})
    assert flow.node("a").app == "1"
    with pytest.raises(ValidationError, match="valid string"):
        FlowSpec.model_validate({"name": "f", "company": "acme", "nodes": [{"name": "a", "app": True}]})


def test_a_node_timeout_past_the_bounds_is_refused_when_the_flow_is_read() -> None:
    node = {"name": "a", "app": "1", "timeouts": {"timeout_result": 1e14}}
    with pytest.raises(ValidationError, match="timeout_result 100000000000000 s is too long"):
        FlowSpec.model_validate({"name": "f", "company": "acme", "nodes": [node]})


def test_conditions_choose_one_branch() -> None:
    flow = spec(
        n("check"),
        n("big", {"node": "check", "when": "check.count > 10"}),
        n("small", {"node": "check", "when": "not check.count > 10"}),
    )
    step = advance(flow, dict(check=S, big=W, small=W), {"check": {"count": "42"}})
    assert step.dispatch == ["big"] and list(step.skip) == ["small"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a.x == 'ok'", True),
        ('a.x == "no"', False),
        ("a.n >= 3 and a.n < 4", True),
        ("a.flag == true", True),
        ("a.missing != 1", True),
        ("a.missing == 1", False),
        ("a.x == 1", False),
        ("not (a.n > 5 or a.x != 'ok')", True),
        ("a.flag", True),
        ("a.zero", False),
    ],
)
def test_condition_language(text: str, expected: bool) -> None:
    results = {"a": {"x": "ok", "n": "3", "flag": "yes", "zero": "0"}}
    assert conditions.evaluate(conditions.parse(text), results) is expected


@pytest.mark.parametrize(
    "text", ["", "a.x ==", "a.x == b", "(a.x", "a.x == 1 b.y", "__import__('os')", "x > 1"]
)
def test_bad_conditions_are_refused(text: str) -> None:
    with pytest.raises(conditions.ConditionError):
        conditions.parse(text)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("(" * 5000 + "a.x" + ")" * 5000, "nested more than 32 deep"),
        ("not " * 5000 + "a.x", "nested more than 32 deep"),
        (" and ".join(["a.x"] * 5000), "more than 256 comparisons"),
    ],
)
def test_a_condition_too_deep_or_too_long_to_walk_is_refused_not_crashed_on(text: str, said: str) -> None:
    """Parsing it, or walking its tree, would exhaust Python's recursion limit."""
    with pytest.raises(conditions.ConditionError, match=said):
        conditions.parse(text)
    assert conditions.parse("(" * 32 + "a.x" + ")" * 32) == conditions.parse("a.x")


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ([n("a", "b"), n("b", "a")], "node 'a' depends on itself: cycle a -> b -> a"),
        ([n("c", "a"), n("a", "b"), n("b", "c")], "node 'c' depends on itself: cycle c -> a -> b -> c"),
        ([n("a", "a")], "node 'a' depends on itself: cycle a -> a"),
        ([n("a", "ghost")], "node 'a' depends on unknown node 'ghost'"),
        ([n("a"), n("a")], "node 'a' is defined twice"),
        ([n("a"), n("b", {"node": "a", "when": "a.x =="})], "node 'b': bad condition"),
        ([n("a"), n("c"), n("b", {"node": "a", "when": "c.x == 1"})], "reads node 'c'"),
        ([{"name": "a"}], "node 'a': give exactly one of `app` or `template`"),
    ],
)
def test_invalid_graphs_name_the_node(nodes: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        spec(*nodes)


def test_a_long_chain_listed_from_its_end_is_checked_in_dependency_order() -> None:
    """Deeper than Python's recursion limit, and every node checked once."""
    count = 5000
    nodes = [n(f"n{i}", f"n{i - 1}") if i else n("n0") for i in range(count)]
    flow = spec(*reversed(nodes))
    assert check_graph(flow.nodes) == [f"n{i}" for i in range(count)]


def test_results_flow_downstream_with_documented_names() -> None:
    flow = FlowSpec.model_validate(
        {
            "name": "f",
            "company": "acme",
            "env_vars": {"SHARED": "1", "OVER": "flow"},
            "nodes": [n("a"), n("b-2", "a"), {**n("d", "b-2"), "env": {"OVER": "node"}}],
        }
    )
    env = node_env(flow, "d", {"a": {"x": "1"}, "b-2": {"total.sum": "9"}})
    assert env == {
        "SHARED": "1",
        "OVER": "node",
        "JETJOBS_RESULT_A_X": "1",
        "JETJOBS_RESULT_B_2_TOTAL_SUM": "9",
    }
    assert result_var("b-2", "total.sum") == "JETJOBS_RESULT_B_2_TOTAL_SUM"


def test_job_ids_are_stable_per_run_node_and_round() -> None:
    assert flow_job_id("r", "a", 1) == flow_job_id("r", "a", 1)
    assert flow_job_id("r", "a", 1) != flow_job_id("r", "a", 2)
    assert flow_job_id("r", "a", 1) != flow_job_id("r2", "a", 1)


@pytest.mark.parametrize(
    ("status", "final", "expected"),
    [
        (Status.PROCESSED, True, NodeStatus.SUCCEEDED),
        (Status.ERROR, True, NodeStatus.FAILED),
        (Status.ERROR, False, None),  # a retry follows: the node keeps running
        (Status.STARTED, False, None),
        (Status.ACKNOWLEDGED, False, None),
    ],
)
def test_only_a_job_s_outcome_ends_its_node(status: Status, final: bool, expected: NodeStatus | None) -> None:
    event = JobEvent.model_validate(
        {
            "job_id": "j",
            "company": "acme",
            "attempt": 1,
            "status": status,
            "at": "2026-01-01T00:00:00Z",
            "final": final,
        }
    )
    assert node_outcome(event) is expected


def test_nodes_whose_results_would_share_variables_are_refused() -> None:
    with pytest.raises(
        FlowError, match=r"nodes 'a-b' and 'A_b' would both pass their results as JETJOBS_RESULT_A_B_"
    ):
        check_result_names(spec(n("a-b"), n("A_b"), n("c", "a-b", "A_b")).nodes)
    check_result_names(spec(n("a"), n("a_b"), n("ab")).nodes)  # distinct prefixes


def test_every_problem_of_a_definition_is_reported_at_once() -> None:
    nodes = [
        n("a", "b"),
        n("b", "a"),
        {"name": "bad", "app": "x", "template": 1},
        n("c", "ghost", "bad"),
        n("d", "d"),
        n("e"),
        n("e"),
        n("f", {"node": "e", "when": "e.x =="}),
        n("g", {"node": "e", "when": "c.x == 1"}),
        n("h", "bad", {"node": "bad", "when": "zz.y == 1"}),
        n("x", "y"),
        n("y", "z"),
        n("z", "x"),
    ]
    with pytest.raises(ValidationError) as refused:
        spec(*nodes)
    found = [(e["loc"], str(e["msg"]).removeprefix("Value error, ")) for e in refused.value.errors()]
    assert found == [
        (("nodes", 2), "node 'bad': give exactly one of `app` or `template`"),
        (("nodes", 0), "node 'a' depends on itself: cycle a -> b -> a"),
        (("nodes", 3), "node 'c' depends on unknown node 'ghost'"),
        (("nodes", 4), "node 'd' depends on itself: cycle d -> d"),
        (("nodes", 5), "node 'e' is defined twice: node names must be unique"),
        (("nodes", 7), "node 'f': bad condition 'e.x ==': the condition ends too early"),
        (
            ("nodes", 8),
            "node 'g': condition 'c.x == 1' reads node 'c', which is not one of its prerequisites",
        ),
        (("nodes", 10), "node 'x' depends on itself: cycle x -> y -> z -> x"),
    ]


def test_every_pair_of_colliding_result_names_is_reported() -> None:
    with pytest.raises(FlowError) as refused:
        check_result_names(spec(n("a-b"), n("a_b"), n("A-B"), n("c"), n("C")).nodes)
    assert refused.value.problems == [
        "nodes 'a-b' and 'a_b' would both pass their results as JETJOBS_RESULT_A_B_<KEY>: rename one of them",
        "nodes 'a-b' and 'A-B' would both pass their results as JETJOBS_RESULT_A_B_<KEY>: rename one of them",
        "nodes 'c' and 'C' would both pass their results as JETJOBS_RESULT_C_<KEY>: rename one of them",
    ]
    assert str(refused.value).splitlines()[0] == "3 problems:"


def test_a_run_s_reason_names_at_most_ten_failed_nodes() -> None:
    states = {f"n{i:02}": F for i in range(25)}
    assert outcome(states) == (
        "error",
        "node(s) failed: n00, n01, n02, n03, n04, n05, n06, n07, n08, n09 and 15 more",
    )


def test_a_run_s_reason_names_failed_nodes_in_the_definition_s_order() -> None:
    names = [f"w{i}" for i in range(300)]
    states = {name: F if int(name[1:]) % 50 == 7 else S for name in names}
    position = {name: i for i, name in enumerate(names)}
    assert outcome(states, position) == ("error", "node(s) failed: w7, w57, w107, w157, w207, w257")
