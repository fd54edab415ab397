"""How an attempt ended, and the one JetStream action each ending takes.

Retry timing is a pure decision so it can be tested without a server."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from bus import Ack, Action, Nak, Term

MAX_DELAY = 60.0
"""Longest wait between two attempts, in seconds."""

Jitter = Callable[[float, float], float]


@dataclass(frozen=True)
class Succeeded:
    """The process exited 0."""


@dataclass(frozen=True)
class Retry:
    """The attempt failed with retries left: run again after `delay` seconds."""

    delay: float


@dataclass(frozen=True)
class Failed:
    """The attempt failed and no retry follows (or the job can never run here)."""


@dataclass(frozen=True)
class Rejected:
    """The message must never run: invalid, or too old to be taken."""

    reason: str


@dataclass(frozen=True)
class HandedBack:
    """This executor will not finish the job (it stopped, or was too slow to
    acknowledge it): another executor takes it after `delay` seconds."""

    delay: float = 0.0


Outcome = Succeeded | Retry | Failed | Rejected | HandedBack


def action_for(outcome: Outcome) -> Action:
    """The single JetStream action that settles a message after `outcome`."""
    match outcome:
        case Succeeded() | Failed():
            return Ack()
        case Retry(delay):
            return Nak(delay)
        case HandedBack(delay):
            return Nak(delay)
        case Rejected(reason):
            return Term(reason)


def retry_delay(attempt: int, jitter: Jitter = random.uniform) -> float:
    """Exponential backoff (1, 2, 4, … capped at a minute) with ±20 % jitter,
    so jobs that failed together do not all come back together."""
    base = min(2.0 ** min(max(attempt, 1) - 1, 6), MAX_DELAY)
    return base * jitter(0.8, 1.2)


def next_retry(
    attempt: int, first_attempt: int, retries: int, jitter: Jitter = random.uniform
) -> float | None:
    """Seconds until the next attempt, or None when the retry budget is spent.

    Every run of the message after its first counts against `retries`, and the
    backoff counts from that first run too: a replayed dead letter starts its fresh
    budget at attempt N+1, and waits as little as a new job's first retry."""
    runs = attempt - first_attempt + 1
    if runs <= retries:
        return retry_delay(runs, jitter)
    return None
