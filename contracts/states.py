"""The status state machine: the one table both executor and store obey."""

from __future__ import annotations

from .enums import Status

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.WAITING_FOR_PREREQUISITES: frozenset({Status.DISPATCHED, Status.ERROR}),
    Status.DISPATCHED: frozenset({Status.ACKNOWLEDGED, Status.STARTED, Status.PROCESSED, Status.ERROR}),
    Status.ACKNOWLEDGED: frozenset({Status.STARTED, Status.PROCESSED, Status.ERROR}),
    Status.STARTED: frozenset({Status.PROCESSED, Status.ERROR}),
    Status.PROCESSED: frozenset(),
    Status.ERROR: frozenset(),
}
"""Allowed moves within one attempt. Skipping ahead is allowed (events may
be lost or arrive out of order); moving backwards never is."""

FINAL: frozenset[Status] = frozenset({Status.PROCESSED, Status.ERROR})


def can_transition(current: Status, new: Status) -> bool:
    """Whether an attempt in `current` may move to `new`."""
    return new in TRANSITIONS[current]


def predecessors(new: Status) -> list[Status]:
    """The statuses from which `new` may be reached (for guarded SQL updates)."""
    return [s for s, targets in TRANSITIONS.items() if new in targets]
