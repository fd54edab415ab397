"""How events change a job: a pure fold, so the rules are tested without a database.

The store reads each job's current attempt, folds a batch of events over it in
stream order, then writes the outcome with set-based statements whose guards
(`guard_pairs`) refuse anything the fold did not allow.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypeVar

from contracts.enums import ErrorKind, Status
from contracts.messages import JobEvent
from contracts.states import FINAL, TRANSITIONS, can_transition

T = TypeVar("T")


@dataclass(frozen=True)
class AttemptState:
    """Where one attempt stands: the columns shared by `job` and `job_attempt`."""

    attempt: int
    status: Status
    final: bool = False
    kind: ErrorKind | None = None
    runner: str | None = None
    pid: int | None = None
    exit_code: int | None = None
    reason: str | None = None
    begin: datetime | None = None
    end: datetime | None = None
    stdout: str | None = None
    stderr: str | None = None
    results: Mapping[str, str] | None = None
    """What the job wrote to its results file; None until an event brings some."""


@dataclass(frozen=True)
class Step:
    """What one event did."""

    state: AttemptState
    changed: bool
    stale: bool = False
    superseded: AttemptState | None = None


def _is_final(event: JobEvent) -> bool:
    return event.final or event.status is Status.PROCESSED


def begin_attempt(event: JobEvent) -> AttemptState:
    """The state of an attempt first seen through `event`."""
    return AttemptState(
        attempt=event.attempt,
        status=event.status,
        final=_is_final(event),
        kind=event.kind,
        runner=event.runner,
        pid=event.pid,
        exit_code=event.exit_code,
        reason=event.reason,
        begin=event.begin,
        end=event.end,
        stdout=event.stdout,
        stderr=event.stderr,
        results=event.results or None,
    )


def advance(state: AttemptState, event: JobEvent) -> AttemptState:
    """Move an attempt forward: the event's values win, the ones it leaves out are kept."""
    return AttemptState(
        attempt=state.attempt,
        status=event.status,
        final=state.final or _is_final(event),
        kind=event.kind or state.kind,
        runner=_first(event.runner, state.runner),
        pid=_first(event.pid, state.pid),
        exit_code=_first(event.exit_code, state.exit_code),
        reason=_first(event.reason, state.reason),
        begin=_first(event.begin, state.begin),
        end=_first(event.end, state.end),
        stdout=_first(event.stdout, state.stdout),
        stderr=_first(event.stderr, state.stderr),
        results=_first(event.results or None, state.results),
    )


def _first(value: T | None, fallback: T | None) -> T | None:
    return fallback if value is None else value


def supersede(state: AttemptState, by: int) -> AttemptState:
    """An unfinished attempt overtaken by a later one: its executor is presumed lost."""
    return replace(state, status=Status.ERROR, kind=ErrorKind.LOST, reason=f"superseded by attempt {by}")


EARLY = frozenset({Status.ACKNOWLEDGED, Status.STARTED})
"""Events that only tell where an attempt runs: arriving after a later status of
the same attempt (two stores sharing the work may commit them out of order), they
still fill in what nothing later said."""


def fill_in(state: AttemptState, event: JobEvent) -> AttemptState:
    """The attempt with the runner, pid and begin a late early event brings, where
    they are missing; its status and outcome stay as they are."""
    return replace(
        state,
        runner=_first(state.runner, event.runner),
        pid=_first(state.pid, event.pid),
        begin=_first(state.begin, event.begin),
    )


def apply(state: AttemptState | None, event: JobEvent) -> Step:
    """Fence by attempt, then move forward only (see `contracts.states.TRANSITIONS`)."""
    if state is None:
        return Step(begin_attempt(event), changed=True)
    if event.attempt < state.attempt:
        return Step(state, changed=False, stale=True)
    if event.attempt > state.attempt:
        lost = None if state.status in FINAL else supersede(state, event.attempt)
        return Step(begin_attempt(event), changed=True, superseded=lost)
    if can_transition(state.status, event.status):
        return Step(advance(state, event), changed=True)
    filled = fill_in(state, event) if event.status in EARLY else state
    return Step(filled, changed=True) if filled != state else Step(state, changed=False)


@dataclass
class Plan:
    """The writes a batch of events needs: job rows, attempt rows, stale flags."""

    jobs: dict[str, tuple[str, AttemptState]] = field(default_factory=dict)
    attempts: dict[tuple[str, int], AttemptState] = field(default_factory=dict)
    stale: list[bool] = field(default_factory=list)


def plan(current: Mapping[str, AttemptState], events: Sequence[JobEvent]) -> Plan:
    """Fold `events` (in stream order) over each job's `current` attempt."""
    out = Plan()
    states: dict[str, AttemptState] = dict(current)
    for event in events:
        step = apply(states.get(event.job_id), event)
        out.stale.append(step.stale)
        if step.superseded is not None:
            out.attempts[event.job_id, step.superseded.attempt] = step.superseded
        if step.changed:
            states[event.job_id] = step.state
            out.jobs[event.job_id] = (event.company, step.state)
            out.attempts[event.job_id, step.state.attempt] = step.state
    return out


def reachable(transitions: Mapping[Status, Iterable[Status]] = TRANSITIONS) -> set[tuple[Status, Status]]:
    """Every forward move, direct or skipping steps: a fold may take several at once."""
    pairs = {(a, b) for a, targets in transitions.items() for b in targets}
    while True:
        more = {(a, c) for a, b in pairs for b2, c in pairs if b == b2} - pairs
        if not more:
            return pairs
        pairs |= more


@functools.cache
def guard_pairs() -> tuple[str, ...]:
    """The allowed moves as `from>to` labels, for the SQL guards (worked out once);
    a status may also stay what it is (a late early event filling in where the
    attempt ran)."""
    moves = reachable() | {(status, status) for status in Status}
    return tuple(sorted(f"{a.value}>{b.value}" for a, b in moves))
