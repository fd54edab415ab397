"""What a committed batch added to the record: what the store's counters count, so
a redelivered or repeated message is counted once, when it is new."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .lifecycle import Outcome

PerCompany = Sequence[tuple[str, int]]
"""(company, how many); `unknown` stands for every company the store does not have:
anyone who may publish can make up company codes, and each would be a series."""


@dataclass(frozen=True)
class Recorded:
    """New jobs, attempts ended and dead letters one batch recorded, the late
    messages of pruned jobs it dropped, and the messages it refused to record
    (each payload, as received, with why), which the projection dead-letters."""

    jobs: PerCompany = ()
    outcomes: Sequence[Outcome] = ()
    dead_letters: PerCompany = ()
    of_pruned_jobs: int = 0
    refused: Sequence[tuple[Any, str]] = ()

    def __add__(self, other: Recorded) -> Recorded:
        return Recorded(
            [*self.jobs, *other.jobs],
            [*self.outcomes, *other.outcomes],
            [*self.dead_letters, *other.dead_letters],
            self.of_pruned_jobs + other.of_pruned_jobs,
            [*self.refused, *other.refused],
        )


NOTHING = Recorded()
