"""How events change a job: a pure fold, so the rules are tested without a database.

The store reads each job's current attempt, folds a batch of events over it in
stream order, then writes the outcome with set-based statements whose guards
(`guard_pairs`) refuse anything the fold did not allow.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from contracts.enums import ErrorKind, Status
from contracts.messages import JobEvent
from contracts.states import FINAL, TRANSITIONS, can_transition


class AttemptState(NamedTuple):
    """Where one attempt stands: the columns shared by `job` and `job_attempt`.

    A named tuple, not a dataclass: the fold makes one per event, and a frozen
    dataclass took several times as long to build."""

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


class Step(NamedTuple):
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
        event.attempt,
        event.status,
        _is_final(event),
        event.kind,
        event.runner,
        event.pid,
        event.exit_code,
        event.reason,
        event.begin,
        event.end,
        event.stdout,
        event.stderr,
        event.results or None,
    )


def advance(state: AttemptState, event: JobEvent) -> AttemptState:
    """Move an attempt forward: the event's values win, the ones it leaves out are kept."""
    return AttemptState(
        state.attempt,
        event.status,
        state.final or _is_final(event),
        event.kind or state.kind,
        state.runner if event.runner is None else event.runner,
        state.pid if event.pid is None else event.pid,
        state.exit_code if event.exit_code is None else event.exit_code,
        state.reason if event.reason is None else event.reason,
        state.begin if event.begin is None else event.begin,
        state.end if event.end is None else event.end,
        state.stdout if event.stdout is None else event.stdout,
        state.stderr if event.stderr is None else event.stderr,
        event.results or state.results,
    )


def supersede(state: AttemptState, by: int) -> AttemptState:
    """An unfinished attempt overtaken by a later one: its executor is presumed lost."""
    return state._replace(status=Status.ERROR, kind=ErrorKind.LOST, reason=f"superseded by attempt {by}")


EARLY = frozenset({Status.ACKNOWLEDGED, Status.STARTED})
"""Events that only tell where an attempt runs: arriving after a later status of
the same attempt (two stores sharing the work may commit them out of order), they
still fill in what nothing later said."""


def fill_in(state: AttemptState, event: JobEvent) -> AttemptState:
    """The attempt with the runner, pid and begin a late early event brings, where
    they are missing; its status and outcome stay as they are."""
    return state._replace(
        runner=event.runner if state.runner is None else state.runner,
        pid=event.pid if state.pid is None else state.pid,
        begin=event.begin if state.begin is None else state.begin,
    )


def apply(state: AttemptState | None, event: JobEvent) -> Step:
    """Fence by attempt, then move forward only (see `contracts.states.TRANSITIONS`)."""
    if state is None:
        return Step(begin_attempt(event), True)
    if event.attempt < state.attempt:
        return Step(state, False, True)
    if event.attempt > state.attempt:
        lost = None if state.status in FINAL else supersede(state, event.attempt)
        return Step(begin_attempt(event), True, False, lost)
    if can_transition(state.status, event.status):
        return Step(advance(state, event), True)
    filled = fill_in(state, event) if event.status in EARLY else state
    return Step(filled, True) if filled != state else Step(state, False)


class Outcome(NamedTuple):
    """How an attempt ended, and whether that ended its job (an attempt a retry or a
    redelivery follows did not)."""

    company: str
    status: Status
    kind: ErrorKind | None
    job_ended: bool


@dataclass
class Plan:
    """The writes a batch of events needs: job rows, attempt rows, stale flags."""

    jobs: dict[str, tuple[str, AttemptState]] = field(default_factory=dict)
    attempts: dict[tuple[str, int], AttemptState] = field(default_factory=dict)
    stale: list[bool] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    """Every attempt this batch ended (its own event, or a later attempt superseding
    it): each once, however often its event came."""
    late: dict[tuple[str, int], AttemptState] = field(default_factory=dict)
    """Older attempts' own errors, come after a later attempt began (another store
    committed them later, or an executor presumed lost came back): they move no job,
    but each attempt's row takes its error in place of the `lost` the store supposed
    (most batches have none)."""
    retries: dict[str, tuple[int, datetime]] = field(default_factory=dict)
    """(attempt, when the next one is due) of the jobs an error of this batch left waiting
    for a next attempt, so the reaper can end one no executor takes in time."""


def _ends(before: AttemptState | None, after: AttemptState) -> bool:
    """Whether a change made an attempt final that was not final before."""
    return after.final and (before is None or before.attempt != after.attempt or not before.final)


def _ends_attempt(before: AttemptState | None, after: AttemptState) -> bool:
    """Whether a change brought an attempt to an outcome it did not have before."""
    return after.status in FINAL and (
        before is None or before.attempt != after.attempt or before.status not in FINAL
    )


def _outcome(company: str, state: AttemptState, job_ended: bool) -> Outcome:
    return Outcome(company, state.status, state.kind, job_ended)


def plan(current: Mapping[str, AttemptState], events: Sequence[JobEvent]) -> Plan:
    """Fold `events` (in stream order) over each job's `current` attempt."""
    out = Plan()
    states: dict[str, AttemptState] = dict(current)
    for event in events:
        job_id = event.job_id
        before = states.get(job_id)
        state, changed, stale, superseded = apply(before, event)
        out.stale.append(stale)
        if stale and event.status is Status.ERROR:
            out.late[job_id, event.attempt] = begin_attempt(event)
        if superseded is not None:
            out.attempts[job_id, superseded.attempt] = superseded
            out.outcomes.append(_outcome(event.company, superseded, False))
        if changed:
            ended = _ends(before, state)
            if ended or _ends_attempt(before, state):
                out.outcomes.append(_outcome(event.company, state, ended))
            if not ended and event.retry_in is not None and state.status is Status.ERROR:
                out.retries[job_id] = (state.attempt, event.at + timedelta(seconds=event.retry_in))
            states[job_id] = state
            out.jobs[job_id] = (event.company, state)
            out.attempts[job_id, state.attempt] = state
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
