"""Retry timing and the outcome → JetStream action map, without servers."""

from __future__ import annotations

import pytest

from bus import Ack, Nak, Term
from executor.outcome import (
    MAX_DELAY,
    Failed,
    HandedBack,
    Outcome,
    Rejected,
    Retry,
    Succeeded,
    action_for,
    next_retry,
    retry_delay,
)


def no_jitter(low: float, high: float) -> float:
    return 1.0


@pytest.mark.parametrize(
    ("attempt", "expected"), [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (50, 60.0), (10**6, 60.0)]
)
def test_retry_delay_doubles_up_to_a_minute(attempt: int, expected: float) -> None:
    assert retry_delay(attempt, no_jitter) == expected


def test_retry_delay_jitter_stays_within_twenty_percent() -> None:
    delays = [retry_delay(3) for _ in range(500)]
    assert all(4 * 0.8 <= d <= 4 * 1.2 for d in delays)
    assert len(set(delays)) > 1


def test_retry_delay_never_exceeds_cap_with_jitter() -> None:
    assert retry_delay(100, lambda low, high: high) == MAX_DELAY * 1.2


def test_retry_delay_jitter_bounds_are_asked_for() -> None:
    asked: list[tuple[float, float]] = []

    def spy(low: float, high: float) -> float:
        asked.append((low, high))
        return low

    assert retry_delay(2, spy) == pytest.approx(1.6)
    assert asked == [(0.8, 1.2)]


@pytest.mark.parametrize(
    ("attempt", "first", "retries", "retry"),
    [
        (1, 1, 0, False),
        (1, 1, 1, True),
        (2, 1, 1, False),
        (2, 1, 2, True),
        (3, 1, 2, False),
        (3, 3, 1, True),
        (4, 3, 1, False),
    ],
)
def test_next_retry_counts_runs_of_this_message(attempt: int, first: int, retries: int, retry: bool) -> None:
    delay = next_retry(attempt, first, retries, no_jitter)
    assert (delay is not None) is retry
    if delay is not None:
        assert delay == retry_delay(attempt - first + 1, no_jitter)


@pytest.mark.parametrize(("first", "retries"), [(1, 3), (5, 3), (40, 3)])
def test_next_retry_backs_off_from_the_message_first_attempt(first: int, retries: int) -> None:
    """A replayed dead letter starts at attempt N+1 with a fresh budget: its first
    retry waits 1 s as a new job's does, not as long as attempt N+1's would."""
    delays = [next_retry(first + run, first, retries, no_jitter) for run in range(retries + 1)]
    assert delays == [1.0, 2.0, 4.0, None]


@pytest.mark.parametrize(
    ("outcome", "action"),
    [
        (Succeeded(), Ack()),
        (Failed(), Ack()),
        (Retry(2.5), Nak(2.5)),
        (HandedBack(), Nak(0.0)),
        (HandedBack(1.0), Nak(1.0)),
        (Rejected("too old"), Term("too old")),
    ],
)
def test_each_outcome_maps_to_one_action(outcome: Outcome, action: object) -> None:
    assert action_for(outcome) == action
