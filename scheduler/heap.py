"""The timer heap: one pending fire per template, earliest first.

Replacing or removing a template leaves its old entry in the heap; a map of
live entries makes such an entry invisible (lazy invalidation), so changes
cost O(log n) and a stale timer can never fire.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from datetime import datetime

_COMPACT_SLACK = 64


@dataclass(frozen=True, slots=True)
class Timer:
    """The next slot of one template, at the revision it was computed for.

    `due` is when to act; it is the slot itself unless the template has jitter
    or a failed publish of `slot` is waiting out its back-off."""

    due: datetime
    template_id: int
    revision: str
    retry_of: datetime | None = None
    planned: datetime | None = None
    """The slot, when `due` is later than it by the template's jitter."""

    @property
    def slot(self) -> datetime:
        """The scheduled instant this timer publishes (and derives its job id from)."""
        return self.retry_of or self.planned or self.due


class TimerHeap:
    """Timers keyed by template; at most one live timer per template."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, Timer]] = []
        self._live: dict[int, int] = {}
        self._timers: dict[int, Timer] = {}
        self._sequence = itertools.count()

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, template_id: object) -> bool:
        return template_id in self._live

    def get(self, template_id: int) -> Timer | None:
        """The live timer of a template, if it has one."""
        return self._timers.get(template_id)

    def push(self, timer: Timer) -> None:
        """Schedule a template, replacing whatever timer it had."""
        number = next(self._sequence)
        self._live[timer.template_id] = number
        self._timers[timer.template_id] = timer
        heapq.heappush(self._heap, (timer.due, number, timer))
        self._compact()

    def remove(self, template_id: int) -> Timer | None:
        """Unschedule a template; returns the timer it had."""
        self._live.pop(template_id, None)
        return self._timers.pop(template_id, None)

    def peek_due(self) -> datetime | None:
        """When the earliest live timer is due, or None when nothing is scheduled."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def count_until(self, when: datetime) -> int:
        """How many timers are due at or before `when` (stale ones included, so at
        most that many), without taking them: a walk of only those heap nodes."""
        count, todo, heap = 0, [0], self._heap
        while todo:
            index = todo.pop()
            if index < len(heap) and heap[index][0] <= when:
                count += 1
                todo += (2 * index + 1, 2 * index + 2)
        return count

    def pop_due(self, now: datetime) -> list[Timer]:
        """Take every live timer due at or before `now`, earliest first."""
        due: list[Timer] = []
        while (when := self.peek_due()) is not None and when <= now:
            _, _, timer = heapq.heappop(self._heap)
            self.remove(timer.template_id)
            due.append(timer)
        return due

    def _is_live(self, number: int, timer: Timer) -> bool:
        return self._live.get(timer.template_id) == number

    def _drop_stale(self) -> None:
        while self._heap and not self._is_live(self._heap[0][1], self._heap[0][2]):
            heapq.heappop(self._heap)

    def _compact(self) -> None:
        """Rebuild once stale entries outnumber live ones, so churn cannot grow memory."""
        if len(self._heap) > 2 * len(self._live) + _COMPACT_SLACK:
            self._heap = [item for item in self._heap if self._is_live(item[1], item[2])]
            heapq.heapify(self._heap)
