"""How often the benchmarks look at the job table while they wait for the outcomes."""

from __future__ import annotations

import pytest

from bench.stack import FIRST_POLL, POLL_RANGE, next_look


def test_half_the_time_left_at_the_last_rate() -> None:
    # 1,000 jobs finished in the last 0.2 s: 500 more take 0.1 s, looked at after half of it
    assert next_look(left=500, finished=1000, seconds=0.2) == pytest.approx(0.05)


def test_looks_stay_within_their_range() -> None:
    shortest, longest = POLL_RANGE
    assert next_look(left=1, finished=5000, seconds=0.1) == shortest
    assert next_look(left=1_000_000, finished=10, seconds=0.5) == longest


def test_without_progress_it_looks_again_soon() -> None:
    assert next_look(left=100, finished=0, seconds=0.3) == FIRST_POLL
    assert next_look(left=100, finished=10, seconds=0.0) == FIRST_POLL
