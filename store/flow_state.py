"""What a flow step needs of its run, kept between steps.

A step used to read every node of its run, so a step's time grew with the run's
size. Now the orchestrator keeps each run it steps in memory, with the
transaction that last changed its definition or nodes (`flow_run.changed_in`,
which triggers set on every change, migration 13). When the run is locked again and that is
still the transaction the kept run came from, the kept run is exactly what
Postgres holds; otherwise (another orchestrator stepped it, a change by hand) it
is read again. A transaction that does not commit leaves the kept run as it was:
steps change a copy, kept only after the commit."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace

from contracts.flows import FlowRun, FlowSpec, FlowStatus, NodeStatus

from .flow_queries import LockedRun

KEEP_NODES = 100_000
"""Nodes kept at once, over all runs (about half a kilobyte each); the least
recently stepped runs go first, and a run bigger than this is read at each step."""


@dataclass
class RunState:
    """A run as its step sees it: header, definition, and every node's status,
    round, job and results. Changed in place as the step writes; kept only once
    the transaction commits."""

    id: str
    company: str
    name: str
    status: FlowStatus
    changed_in: str | None
    """The transaction that last changed the nodes as this copy has them."""
    xact: str
    """The transaction holding the run's lock now."""
    spec: FlowSpec
    states: dict[str, NodeStatus]
    rounds: dict[str, int]
    job_ids: dict[str, str | None]
    results: dict[str, dict[str, str]]

    @classmethod
    def of(cls, run: FlowRun, locked: LockedRun) -> RunState:
        """A run read under the lock `locked` holds."""
        assert run.spec is not None
        return cls(
            id=run.id,
            company=run.company,
            name=run.name,
            status=locked.status,
            changed_in=locked.changed_in,
            xact=locked.this_xact,
            spec=run.spec,
            states={n.name: n.status for n in run.nodes},
            rounds={n.name: n.round for n in run.nodes},
            job_ids={n.name: n.job_id for n in run.nodes},
            results={n.name: n.results for n in run.nodes},
        )

    def copy(self) -> RunState:
        """A copy to change, leaving the kept one as Postgres last committed it."""
        return replace(
            self,
            states=dict(self.states),
            rounds=dict(self.rounds),
            job_ids=dict(self.job_ids),
            results=dict(self.results),
        )

    @property
    def result(self) -> dict[str, dict[str, str]]:
        """Every node's non-empty results, by node name, for the flow's end event."""
        return {name: dict(self.results[name]) for name in sorted(self.results) if self.results[name]}

    def running(self) -> list[str]:
        """The job ids of the nodes dispatched and not yet ended."""
        return [
            job_id
            for name, status in self.states.items()
            if status is NodeStatus.DISPATCHED and (job_id := self.job_ids[name])
        ]


class RunCache:
    """The runs this orchestrator stepped last, by id, at most `nodes` nodes in
    all (least recently stepped out first)."""

    def __init__(self, nodes: int = KEEP_NODES) -> None:
        self._limit = nodes
        self._nodes = 0
        self._runs: OrderedDict[str, RunState] = OrderedDict()

    def get(self, locked: LockedRun) -> RunState | None:
        """A copy of the kept run if no other transaction changed it since;
        None when it must be read again."""
        kept = self._runs.get(locked.id)
        if kept is None or kept.changed_in != locked.changed_in:
            return None
        self._runs.move_to_end(locked.id)
        copy = kept.copy()
        copy.status = locked.status
        copy.xact = locked.this_xact
        return copy

    def keep(self, runs: Iterable[RunState]) -> None:
        """Keep what a committed transaction wrote: every run kept was changed by it
        (one it left as it was only costs a read at its next step); an ended run
        is stepped no more."""
        for run in runs:
            run.changed_in = run.xact
            self._forget(run.id)
            if run.status is FlowStatus.STARTED and len(run.states) <= self._limit:
                self._runs[run.id] = run
                self._nodes += len(run.states)
        while self._nodes > self._limit:
            self._forget(next(iter(self._runs)))

    def _forget(self, run_id: str) -> None:
        gone = self._runs.pop(run_id, None)
        if gone is not None:
            self._nodes -= len(gone.states)

    @property
    def nodes(self) -> int:
        """Nodes kept now."""
        return self._nodes
