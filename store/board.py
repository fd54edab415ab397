"""Keeping the templates KV equal to what Postgres says should be scheduled."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

import structlog

from bus import TemplateBoard
from contracts.dispatch import application_env, merged_env
from contracts.models import ActiveTemplate, Application, cron_for

from .layering import with_extras
from .queries import Queries
from .rows import TemplateRow
from .tenant_queries import TemplateExtras, TenantQueries

log = structlog.get_logger("jetjobs.store")


def active_template(row: TemplateRow, cron: str, extras: TemplateExtras | None = None) -> ActiveTemplate:
    """The executable view of a template, with its application's defaults under its own env
    and its credentials and sealed secret values as references (see `layering`); a flow
    template names its flow."""
    spec, app = row.template, row.app
    view = ActiveTemplate(
        id=spec.id,
        revision=row.revision,
        name=spec.name,
        company=spec.company,
        pool=spec.pool,
        app_id=spec.app_id,
        executable="" if app is None else app.executable,
        cmdparams="" if app is None else app.cmdparams,
        env=spec.env if app is None else merged_env(application_env(app), spec.env),
        masked=None if app is None else secret_fields(app) or None,
        flow=spec.flow,
        cron=cron,
        timezone=spec.timezone,
        timeouts=spec.timeouts,
        retries=spec.retries,
        overlap=spec.overlap,
        misfire=spec.misfire,
        catch_up_limit=spec.catch_up_limit,
        jitter=spec.jitter,
        paused=spec.paused or row.company_paused,
        scheduled_since=row.scheduled_since,
    )
    return view if app is None else with_extras(view, app, spec.env, extras, row.sealed)


def secret_fields(app: Application) -> list[str]:
    """The variables whose values a job must never print, whichever layer sets them."""
    return sorted(name for name, spec in app.environment.items() if spec.secret)


def scheduled(row: TemplateRow, extras: TemplateExtras | None = None) -> ActiveTemplate | None:
    """What schedulers should fire: active, not deleted, of an enabled company, with a schedule."""
    cron = cron_for(row.template.interv, row.template.cron)
    deleted = row.template.deleted_at is not None
    if not row.template.active or deleted or not row.company_enabled or cron is None:
        return None
    return active_template(row, cron, extras)


BOARD_LOCK = 0x6A6A2D626F617264
"""The advisory lock key ("jj-board" in ASCII) a store holds while it writes the board."""


class BoardKeeper:
    """Writes templates to the board after every change, and converges after a failure.

    Every write, by any store, reads the templates afresh and writes them under one
    Postgres lock (`BOARD_LOCK`), so two changes close together, made through two
    stores or while another store resyncs, never leave the older one on the board."""

    def __init__(self, pool: Any, board: TemplateBoard, retry_every: float = 5.0) -> None:
        self._pool = pool
        self._board = board
        self._retry_every = retry_every
        self._lock = asyncio.Lock()
        self._dirty = asyncio.Event()

    async def resync(self) -> int:
        """Make the whole board match Postgres; returns how many templates are scheduled."""
        async with self._lock, self._pool.acquire() as conn, conn.transaction():
            queries = Queries(conn)
            await queries.lock_board(BOARD_LOCK)
            rows = await queries.templates()
            extras = await TenantQueries(conn).template_extras([row.template.id for row in rows])
            wanted = [t for row in rows if (t := scheduled(row, extras.get(row.template.id))) is not None]
            await self._board.put_all(wanted)
            await self._board.remove_all(sorted(await self._board.ids() - {t.id for t in wanted}))
        log.info("store.board_synced", scheduled=len(wanted))
        return len(wanted)

    async def refresh(self, template_ids: Collection[int]) -> None:
        """Put or remove these templates; on failure, a full resync follows in the background."""
        try:
            async with self._lock, self._pool.acquire() as conn, conn.transaction():
                await self._refresh(conn, template_ids)
        except Exception as error:
            log.warning("store.board_failed", templates=sorted(template_ids), error=repr(error))
            self._dirty.set()

    async def _refresh(self, conn: Any, template_ids: Collection[int]) -> None:
        queries = Queries(conn)
        await queries.lock_board(BOARD_LOCK)
        found = {row.template.id: row for row in await queries.templates(ids=list(template_ids))}
        extras = await TenantQueries(conn).template_extras(list(found))
        wanted: list[ActiveTemplate] = []
        gone: list[int] = []
        for template_id in template_ids:
            row = found.get(template_id)
            template = None if row is None else scheduled(row, extras.get(template_id))
            if template is None:
                gone.append(template_id)
            else:
                wanted.append(template)
        await self._board.put_all(wanted)
        await self._board.remove_all(gone)

    async def refill(self) -> None:
        """Resync whenever the bucket was made again, empty (NATS lost its storage, an
        operator deleted it), whoever made it: schedulers fire nothing until then."""
        while True:
            await self._board.remade()
            log.warning("store.board_remade", done="filling it again from Postgres")
            self._dirty.set()

    async def run(self) -> None:
        """Retry a full resync after a failed write until it succeeds."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.resync()
            except Exception as error:
                log.warning("store.board_failed", error=repr(error), retry_in=self._retry_every)
                self._dirty.set()
                await asyncio.sleep(self._retry_every)
