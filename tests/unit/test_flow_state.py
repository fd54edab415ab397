"""The runs an orchestrator keeps between steps: used only while no other
transaction changed them, changed only as copies, bounded by their nodes."""

from __future__ import annotations

from contracts.flows import FlowSpec, FlowStatus, NodeStatus
from store.flow_queries import LockedRun
from store.flow_state import RunCache, RunState


def run(run_id: str, nodes: int, changed_in: str | None = "100", xact: str = "101") -> RunState:
    names = [f"n{i}" for i in range(nodes)]
    spec = FlowSpec.model_validate(
        {"name": "f", "company": "acme", "nodes": [{"name": n, "app": "a"} for n in names]}
    )
    return RunState(
        id=run_id,
        company="acme",
        name="f",
        status=FlowStatus.STARTED,
        changed_in=changed_in,
        xact=xact,
        spec=spec,
        states=dict.fromkeys(names, NodeStatus.WAITING),
        rounds=dict.fromkeys(names, 1),
        job_ids=dict.fromkeys(names),
        results={n: {} for n in names},
    )


def locked(run_id: str, changed_in: str | None, xact: str = "200") -> LockedRun:
    """The run as a later transaction locks it; `changed_in` as Postgres has it then."""
    return LockedRun(run_id, "acme", "f", FlowStatus.STARTED, changed_in, xact)


def test_a_kept_run_is_used_until_another_transaction_changes_it() -> None:
    cache = RunCache()
    first = run("r1", 3)  # its transaction, 101, wrote the run's nodes and committed
    cache.keep([first])
    again = cache.get(locked("r1", "101", xact="102"))
    assert again is not None and again.xact == "102" and again.changed_in == "101"
    again.states["n0"] = NodeStatus.DISPATCHED  # a step changes its copy only
    kept = cache.get(locked("r1", "101"))
    assert kept is not None and kept.states["n0"] is NodeStatus.WAITING
    assert cache.get(locked("r1", "150")) is None  # another transaction changed it since
    assert cache.get(locked("r1", None)) is None


def test_an_ended_run_is_dropped() -> None:
    cache = RunCache()
    cache.keep([run("r1", 2)])
    ended = run("r1", 2)
    ended.status = FlowStatus.FINISHED
    cache.keep([ended])
    assert cache.get(locked("r1", "101")) is None and cache.nodes == 0


def test_runs_are_kept_within_a_budget_of_nodes_least_recently_stepped_out_first() -> None:
    cache = RunCache(nodes=10)
    cache.keep([run("a", 4), run("b", 4)])
    assert cache.get(locked("a", "101")) is not None  # a is now the most recent
    cache.keep([run("c", 4)])
    assert cache.nodes == 8
    assert cache.get(locked("b", "101")) is None
    assert cache.get(locked("a", "101")) is not None and cache.get(locked("c", "101")) is not None
    cache.keep([run("huge", 11)])  # bigger than the whole budget: read at every step instead
    assert cache.get(locked("huge", "101")) is None and cache.nodes == 8
