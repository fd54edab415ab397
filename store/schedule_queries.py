"""One typed method per query of `sql/schedule.sql`."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from importlib import resources
from typing import Any

from contracts.schedule import SlotOutcome, SlotReason, SlotRecord, SlotView, Trigger

from .db import Db
from .loader import Query, parse_queries
from .retention import retention_sql


@functools.cache
def schedule_sql() -> dict[str, Query]:
    """Every query of `store/sql/schedule.sql`, read once."""
    text = resources.files("store").joinpath("sql", "schedule.sql").read_text(encoding="utf-8")
    return parse_queries(text)


def slot_view(row: Any) -> SlotView:
    record = SlotRecord(
        template_id=row["template_id"],
        company=row["company"],
        slot=row["slot"],
        outcome=SlotOutcome(row["outcome"]),
        reason=None if row["reason"] is None else SlotReason(row["reason"]),
        detail=row["detail"],
        trigger=Trigger(row["trigger"]),
        job_id=row["job_id"],
        flow_run=row["flow_run"],
        scheduled_at=row["scheduled_at"],
        lateness=row["lateness"],
        recorded_at=row["recorded_at"],
        scheduler=row["scheduler"],
    )
    return SlotView(
        record=record,
        job_status=row["job_status"],
        job_kind=row["job_kind"],
        job_final=row["job_final"],
        flow_status=row["flow_status"],
    )


class ScheduleQueries:
    """Pause, backfill and explain queries, bound to one connection (or the pool)."""

    def __init__(self, db: Db) -> None:
        self._db = db
        self._sql = schedule_sql()

    def _q(self, name: str) -> str:
        return self._sql[name].sql

    async def set_template_paused(self, template_id: int, paused: bool) -> bool:
        """False when the template does not exist or is deleted."""
        return await self._db.fetchval(self._q("set_template_paused"), template_id, paused) is not None

    async def delete_template(self, template_id: int) -> datetime | None:
        """When the template was deleted; None when it is unknown or was deleted before."""
        value: datetime | None = await self._db.fetchval(self._q("delete_template"), template_id)
        return value

    async def set_company_paused(self, code: str, paused: bool) -> int | None:
        """The company's id; None when the code is unknown."""
        value = await self._db.fetchval(self._q("set_company_paused"), code, paused)
        return None if value is None else int(value)

    async def company_template_ids(self, company_id: int) -> list[int]:
        return [int(r["id"]) for r in await self._db.fetch(self._q("company_template_ids"), company_id)]

    async def company_paused(self, code: str) -> bool | None:
        value = await self._db.fetchval(self._q("company_paused"), code)
        return None if value is None else bool(value)

    async def ran_jobs(self, job_ids: Sequence[str]) -> set[str]:
        return {r["id"] for r in await self._db.fetch(self._q("ran_jobs"), list(job_ids))}

    async def pruned_before(self) -> datetime | None:
        """The newest horizon history was pruned to; None before the first prune."""
        value: datetime | None = await self._db.fetchval(retention_sql()["pruned_before"].sql)
        return value

    async def recent_slots(self, template_id: int, company: str, limit: int) -> list[SlotView]:
        """The template's latest slots recorded under `company` (its company now)."""
        found = await self._db.fetch(self._q("recent_slots"), template_id, limit, company)
        return [slot_view(r) for r in found]
