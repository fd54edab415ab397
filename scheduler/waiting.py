"""Owed runs waiting for their turn. With overlap `forbid` a run owed by a misfire
policy never starts beside the template's active run, and is not skipped for it
either (the policy promised it): it waits until that run is over — its final
event, or its horizon if that event never comes — and then goes, in slot order."""

from __future__ import annotations

from datetime import datetime

from .policy import Due


class Waiting:
    """Owed runs by template, each template's held until its active run is over."""

    def __init__(self) -> None:
        self._by_template: dict[int, tuple[datetime, list[Due]]] = {}

    def hold(self, due: Due, until: datetime) -> None:
        """`due` waits for the template's active run, which ends at `until` at the latest."""
        _, dues = self._by_template.get(due.template.id, (until, []))
        self._by_template[due.template.id] = (until, [*dues, due])

    def release(self, template_id: int) -> list[Due]:
        """The template's active run is over: its waiting runs."""
        _, dues = self._by_template.pop(template_id, (None, []))
        return dues

    def expired(self, now: datetime) -> list[Due]:
        """The waiting runs whose template's active run reached its horizon by `now`."""
        ended = [tid for tid, (until, _) in self._by_template.items() if until <= now]
        return [due for template_id in ended for due in self.release(template_id)]

    def next_expiry(self) -> datetime | None:
        """When the earliest horizon of a run something waits for passes."""
        return min((until for until, _ in self._by_template.values()), default=None)

    def slots(self, template_id: int) -> set[datetime]:
        """The slots of the template's waiting runs."""
        _, dues = self._by_template.get(template_id, (None, []))
        return {due.slot for due in dues}

    def drop(self, template_id: int) -> None:
        """Forget a template's waiting runs (it left the board)."""
        self._by_template.pop(template_id, None)
