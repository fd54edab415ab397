"""Which template has a run still active: what the overlap policy asks.

A run counts as active from its publish until its final lifecycle event, or
until its horizon passes (the longest it could take with every retry), so a
lost final event can never block a template for good."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .entry import Entry


def horizon(template: Entry, fired_at: datetime) -> datetime:
    """The latest a run of `template` fired at `fired_at` could still be active."""
    return fired_at + template.horizon


@dataclass(frozen=True)
class Run:
    """One active run of a template."""

    job_id: str
    company: str
    until: datetime
    started: datetime
    """When it was fired (or, for a run a new leader inherits, recorded)."""


class Runs:
    """Active runs by template and by job id."""

    def __init__(self) -> None:
        self._by_template: dict[int, Run] = {}
        self._by_job: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._by_template)

    def started(self, template_id: int, run: Run) -> None:
        """A run of the template was published (it replaces any earlier one)."""
        self.finished_template(template_id)
        self._by_template[template_id] = run
        self._by_job[run.job_id] = template_id

    def finished(self, job_id: str) -> int | None:
        """The job reached its final outcome; returns the template it was the active run of."""
        template_id = self._by_job.pop(job_id, None)
        if template_id is not None:
            self._by_template.pop(template_id, None)
        return template_id

    def finished_template(self, template_id: int) -> None:
        run = self._by_template.pop(template_id, None)
        if run is not None:
            self._by_job.pop(run.job_id, None)

    def watching(self, job_id: str) -> bool:
        """Whether the job is one of the runs followed here."""
        return job_id in self._by_job

    def started_before(self, when: datetime) -> list[Run]:
        """The runs followed here that were fired before `when`."""
        return [run for run in self._by_template.values() if run.started < when]

    def active(self, template_id: int, now: datetime) -> Run | None:
        """The template's active run, if any (runs past their horizon are dropped)."""
        run = self._by_template.get(template_id)
        if run is not None and run.until < now:
            self.finished_template(template_id)
            return None
        return run

    def clear(self) -> None:
        self._by_template.clear()
        self._by_job.clear()
