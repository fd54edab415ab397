"""One template as the scheduler holds it: only what deciding and timing a slot
needs, in a slotted object, with the template's board bytes kept to build its
job message when a slot fires. 100,000 decoded templates take ~4 KB each; an
entry takes about a quarter of that, most of it the bytes."""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts.models import ActiveTemplate
from contracts.schedule import Misfire, Overlap

HORIZON_SLACK = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Entry:
    """The scheduling fields of a template, its run horizon, and its board bytes."""

    id: int
    revision: str
    company: str
    cron: str
    timezone: str
    overlap: Overlap
    misfire: Misfire
    catch_up_limit: int
    jitter: float
    paused: bool
    flow: str | None
    """The saved flow a fire starts, for a flow template."""
    horizon: timedelta
    """The longest a run could stay active, every retry included, plus a minute."""
    since: datetime | None
    """When it was put on the schedule: no slot before it is owed."""
    raw: bytes
    """The template as it is on the board (JSON), decoded only when a slot fires."""

    @classmethod
    def of(cls, template: ActiveTemplate, raw: bytes | None = None) -> Entry:
        """The entry of a decoded template; strings many templates share (cron,
        zone, company) are interned so they are held once. ValueError when its
        timeouts are out of bounds (a template stored before they were checked):
        its run horizon would overflow, and no job message could carry them."""
        limits = template.timeouts.bounded()
        seconds = limits.timeout + (limits.timeout_ack + limits.timeout_result) * (template.retries + 1)
        return cls(
            id=template.id,
            revision=template.revision,
            company=sys.intern(template.company),
            cron=sys.intern(template.cron),
            timezone=sys.intern(template.timezone),
            overlap=template.overlap,
            misfire=template.misfire,
            catch_up_limit=template.catch_up_limit,
            jitter=template.jitter,
            paused=template.paused,
            flow=template.flow,
            horizon=_horizon(seconds),
            since=template.scheduled_since,
            raw=template.model_dump_json().encode() if raw is None else raw,
        )

    def template(self) -> ActiveTemplate:
        """The whole template, to build a job message from."""
        return ActiveTemplate.model_validate_json(self.raw)


@functools.lru_cache(maxsize=256)
def _horizon(seconds: float) -> timedelta:
    """One shared object per distinct run horizon (templates mostly keep the defaults)."""
    return timedelta(seconds=seconds) + HORIZON_SLACK
