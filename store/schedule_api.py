"""API operations over schedules: pause and resume, backfill, explain."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog

from bus import Bus, PublishFailed
from bus.lease import Lease
from contracts import api
from contracts import schedule as sc
from contracts.api import ApiFailure
from contracts.cron import fires_between, next_fires
from contracts.dispatch import job_message, scheduled_job_id
from contracts.messages import JobMessage
from contracts.models import RunTemplate, cron_for
from contracts.schedule import SlotOutcome, SlotRecord, Trigger

from . import resolve
from .api import Handler, _typed
from .board import BoardKeeper, active_template
from .flow_templates import not_for_flows
from .masking import shown_template
from .queries import Queries
from .rows import TemplateRow
from .schedule_queries import ScheduleQueries
from .tenant_queries import TenantQueries
from .writers import write_dispatches

log = structlog.get_logger("jetjobs.store")


class ScheduleApi:
    """Pausing, backfilling and explaining templates' schedules."""

    def __init__(self, pool: Any, bus: Bus, board: BoardKeeper) -> None:
        self._pool = pool
        self._bus = bus
        self._board = board

    def handlers(self) -> dict[str, Handler]:
        """The handler of every schedule operation, for `bus.ApiServer`."""
        return {
            "template.pause": _typed("template.pause", api.TemplateRef, self.template_pause),
            "template.resume": _typed("template.resume", api.TemplateRef, self.template_resume),
            "company.pause": _typed("company.pause", sc.CompanyRef, self.company_pause),
            "company.resume": _typed("company.resume", sc.CompanyRef, self.company_resume),
            "template.backfill": _typed("template.backfill", sc.Backfill, self.template_backfill),
            "template.explain": _typed("template.explain", sc.ExplainRequest, self.template_explain),
        }

    # -- pause / resume ------------------------------------------------------------

    async def template_pause(self, request: api.TemplateRef) -> RunTemplate:
        return await self._template_paused(request.id, True)

    async def template_resume(self, request: api.TemplateRef) -> RunTemplate:
        return await self._template_paused(request.id, False)

    async def _template_paused(self, template_id: int, paused: bool) -> RunTemplate:
        if not await ScheduleQueries(self._pool).set_template_paused(template_id, paused):
            await resolve.template(Queries(self._pool), template_id)  # says why: unknown, or deleted
            raise resolve.unknown_template(template_id)
        await self._board.refresh([template_id])
        log.info("template.paused" if paused else "template.resumed", template_id=template_id)
        return shown_template(await resolve.template(Queries(self._pool), template_id))

    async def company_pause(self, request: sc.CompanyRef) -> sc.CompanyPaused:
        return await self._company_paused(request.code, True)

    async def company_resume(self, request: sc.CompanyRef) -> sc.CompanyPaused:
        return await self._company_paused(request.code, False)

    async def _company_paused(self, code: str, paused: bool) -> sc.CompanyPaused:
        queries = ScheduleQueries(self._pool)
        company_id = await queries.set_company_paused(code, paused)
        if company_id is None:
            raise resolve.unknown_company(code)
        ids = await queries.company_template_ids(company_id)
        await self._board.refresh(ids)
        log.info("company.paused" if paused else "company.resumed", company=code, templates=len(ids))
        return sc.CompanyPaused(code=code, paused=paused, templates=len(ids))

    # -- backfill --------------------------------------------------------------------

    async def template_backfill(self, request: sc.Backfill) -> sc.BackfillReply:
        row = await resolve.template(Queries(self._pool), request.id)
        not_for_flows(request.id, row.template.flow, row.template.company, "backfill runs jobs only")
        cron = _backfillable(row, request)
        slots = fires_between(
            cron, row.template.timezone, request.start, request.end, limit=request.limit + 1
        )
        if len(slots) > request.limit:
            raise ApiFailure(
                400,
                f"the range holds more than {request.limit} slots of template {request.id}: "
                "narrow --from/--to or raise --limit",
            )
        ids = {slot: scheduled_job_id(request.id, slot) for slot in slots}
        queries = ScheduleQueries(self._pool)
        ran = await queries.ran_jobs(list(ids.values()))
        # read after: a prune records its horizon before it removes the records read above
        _knowable(request.id, [s for s, j in ids.items() if j not in ran], await queries.pruned_before())
        extras = (await TenantQueries(self._pool).template_extras([request.id])).get(request.id)
        template, now = active_template(row, cron, extras), datetime.now(UTC)
        messages = [
            job_message(template, job_id=job_id, slot=slot, now=now, launched_by="backfill")
            for slot, job_id in ids.items()
            if job_id not in ran
        ]
        queued = await self._queue(request.id, messages)
        done = {m.job_id for m in queued}
        return sc.BackfillReply(
            template_id=request.id,
            queued=[sc.BackfillSlot(slot=m.scheduled_at, job_id=m.job_id) for m in queued],
            deduplicated=[sc.BackfillSlot(slot=s, job_id=j) for s, j in ids.items() if j not in done],
        )

    async def _queue(self, template_id: int, messages: list[JobMessage]) -> list[JobMessage]:
        """Publish, then record jobs and slots; returns the messages that were new."""
        if not messages:
            return []
        try:
            duplicates = await self._bus.publisher.dispatch(messages)
        except (PublishFailed, TimeoutError) as error:
            reason = str(error) or "NATS did not answer in time"
            raise ApiFailure(
                503, f"could not queue the backfill of template {template_id}: {reason}"
            ) from None
        queued = [m for m, duplicate in zip(messages, duplicates, strict=True) if not duplicate]
        now = datetime.now(UTC)
        async with self._pool.acquire() as conn, conn.transaction():
            await write_dispatches(Queries(conn), queued)
            await Queries(conn).record_slots([_backfilled(m, now) for m in queued])
        log.info("template.backfilled", template_id=template_id, queued=len(queued))
        return queued

    # -- explain ---------------------------------------------------------------------

    async def template_explain(self, request: sc.ExplainRequest) -> sc.Explanation:
        row = await resolve.template(Queries(self._pool), request.id, deleted=True)
        spec = row.template
        cron = cron_for(spec.interv, spec.cron)
        upcoming = spec.active and row.company_enabled and cron is not None and spec.deleted_at is None
        now = datetime.now(UTC)
        lease = await Lease.open(self._bus.js, "store")
        return sc.Explanation(
            template_id=spec.id,
            name=spec.name,
            company=spec.company,
            cron=cron,
            timezone=spec.timezone,
            active=spec.active,
            paused=spec.paused,
            company_paused=row.company_paused,
            company_enabled=row.company_enabled,
            deleted_at=spec.deleted_at,
            overlap=spec.overlap,
            misfire=spec.misfire,
            jitter=spec.jitter,
            leader=await lease.holder(),
            next=next_fires(cron, spec.timezone, now, request.next) if upcoming and cron else [],
            slots=await ScheduleQueries(self._pool).recent_slots(spec.id, spec.company, request.last),
        )


def _backfillable(row: TemplateRow, request: sc.Backfill) -> str:
    """The template's cron, or the one-line reason it cannot be backfilled over that range."""
    cron = cron_for(row.template.interv, row.template.cron)
    if cron is None:
        raise ApiFailure(
            409,
            f"template {request.id} has no schedule (interval n), so no past slots: "
            f"run it now with `jetjobs job run {request.id}`",  # a flow's is refused before
        )
    if not row.company_enabled:
        raise ApiFailure(409, f"company '{row.template.company}' is disabled: its templates cannot run")
    if request.end <= request.start:
        raise ApiFailure(400, "--to must be later than --from")
    if request.end > datetime.now(UTC):
        raise ApiFailure(
            400, "--to is in the future: the scheduler runs future slots; backfill only past ones"
        )
    return cron


def _knowable(template_id: int, unrecorded: list[datetime], horizon: datetime | None) -> None:
    """Refuse to run slots with no record at or before the retention horizon: whether
    they ran went with their pruned history, and running them could run them twice."""
    if horizon is None:
        return
    lost = [slot for slot in unrecorded if slot <= horizon]
    if not lost:
        return
    after = horizon.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    first, last = (f"{s.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" for s in (lost[0], lost[-1]))
    raise ApiFailure(
        409,
        f"history before {after} was pruned, so whether {len(lost)} slot(s) of template "
        f"{template_id} from {first} to {last} already ran is no longer known: nothing was "
        f"queued. Backfill only later slots (--from {after}), or run the template once now "
        f"with `jetjobs job run {template_id}`",
    )


def _backfilled(message: JobMessage, now: datetime) -> SlotRecord:
    assert message.template_id is not None
    return SlotRecord(
        template_id=message.template_id,
        company=message.company,
        slot=message.scheduled_at,
        outcome=SlotOutcome.FIRED,
        trigger=Trigger.BACKFILL,
        job_id=message.job_id,
        scheduled_at=message.scheduled_at,
        recorded_at=now,
        scheduler="backfill",
    )
