"""The scheduler's memory: the templates it knows and the next slot of each.

Everything here is synchronous and takes `now` as an argument, so the rules
(what a change does to a pending slot, what happens after a fire or a failed
publish) are tested without servers or sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import structlog

from contracts.models import ActiveTemplate

from .cron import next_fire
from .heap import Timer, TimerHeap

log = structlog.get_logger("jetjobs.scheduler")


@dataclass(frozen=True)
class Due:
    """One slot of one template, ready to publish."""

    template: ActiveTemplate
    slot: datetime


@dataclass(frozen=True)
class Backoff:
    """How long a template waits before publishing a failed slot again:
    `first` seconds, doubling with each failure in a row, at most `cap`."""

    first: float = 1.0
    cap: float = 30.0

    def delay(self, failures: int) -> timedelta:
        """The pause after the `failures`-th failure in a row (1 for the first)."""
        return timedelta(seconds=min(self.cap, self.first * 2 ** min(failures - 1, 32)))


class Plan:
    """Templates by id, and a timer heap holding each one's next slot."""

    def __init__(self, backoff: Backoff | None = None) -> None:
        self._templates: dict[int, ActiveTemplate] = {}
        self._heap = TimerHeap()
        self._backoff = backoff or Backoff()
        self._failures: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._templates)

    def template(self, template_id: int) -> ActiveTemplate | None:
        """The template as last seen on the board."""
        return self._templates.get(template_id)

    def ids(self) -> set[int]:
        """Every template currently scheduled."""
        return set(self._templates)

    def timer(self, template_id: int) -> Timer | None:
        """The pending slot of a template (None while it is being published)."""
        return self._heap.get(template_id)

    def next_due(self) -> datetime | None:
        """The earliest pending slot."""
        return self._heap.peek_due()

    def put(self, template: ActiveTemplate, now: datetime) -> None:
        """Add or replace a template. Its pending slot stays when the schedule
        (cron and timezone) is unchanged; otherwise it moves to the first slot
        strictly after `now`. A template whose schedule cannot be evaluated is
        dropped with an error logged, never fired."""
        old = self._templates.get(template.id)
        pending = self._heap.get(template.id)
        if old is not None and pending is not None and _same_schedule(old, template):
            timer = replace(pending, revision=template.revision)
        else:
            try:
                timer = Timer(
                    next_fire(template.cron, template.timezone, now), template.id, template.revision
                )
            except ValueError as error:
                log.error("schedule.invalid_template", template_id=template.id, reason=str(error))
                self.remove(template.id)
                return
        self._templates[template.id] = template
        self._heap.push(timer)
        log.info(
            "schedule.template_set", template_id=template.id, revision=template.revision, slot=timer.slot
        )

    def remove(self, template_id: int) -> None:
        """Forget a template; its pending slot never fires."""
        if self._templates.pop(template_id, None) is not None:
            log.info("schedule.template_removed", template_id=template_id)
        self._heap.remove(template_id)
        self._failures.pop(template_id, None)

    def retain(self, template_ids: set[int]) -> None:
        """Forget every template not in `template_ids` (after re-reading the board)."""
        for template_id in self.ids() - template_ids:
            self.remove(template_id)

    def take_due(self, now: datetime) -> list[Due]:
        """Every slot due at or before `now`; each template's timer leaves the
        heap until `advance` or `retry` settles it."""
        return [
            Due(self._templates[timer.template_id], timer.slot)
            for timer in self._heap.pop_due(now)
            if timer.template_id in self._templates
        ]

    def advance(self, template_id: int, slot: datetime) -> None:
        """`slot` is published: schedule the template's next slot after it, unless
        the template was removed or rescheduled meanwhile."""
        self._failures.pop(template_id, None)
        template = self._templates.get(template_id)
        if template is None or template_id in self._heap:
            return
        try:
            due = next_fire(template.cron, template.timezone, slot)
        except ValueError as error:
            log.error("schedule.invalid_template", template_id=template_id, reason=str(error))
            self.remove(template_id)
            return
        self._heap.push(Timer(due, template_id, template.revision))

    def retry(self, template_id: int, slot: datetime, now: datetime) -> datetime | None:
        """`slot` could not be published: make it pending again, after a back-off
        that grows with each failure in a row, with the template's latest
        definition. Returns when it will be tried, or None when the template is
        gone. Other templates keep their own timers, so one failing template
        never delays the rest."""
        template = self._templates.get(template_id)
        if template is None:
            return None
        failures = self._failures.get(template_id, 0) + 1
        self._failures[template_id] = failures
        pending = self._heap.get(template_id)
        if pending is not None and pending.slot <= slot:
            return pending.due
        due = now + self._backoff.delay(failures)
        self._heap.push(Timer(due, template_id, template.revision, retry_of=slot))
        return due


def _same_schedule(old: ActiveTemplate, new: ActiveTemplate) -> bool:
    return old.cron == new.cron and old.timezone == new.timezone
