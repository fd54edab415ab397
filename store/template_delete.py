"""Deleting a run template. Its row stays, marked deleted: jobs, slots, credential
assignments and audit entries name it by id, so its history stays readable and its
id is never reused. It leaves the board at once, so no scheduler fires it again."""

from __future__ import annotations

from typing import Any

import structlog

from contracts import api
from contracts.api import ApiFailure
from contracts.models import RunTemplate

from . import resolve
from .actors import audit
from .api import Handler, _typed
from .board import BoardKeeper
from .flow_queries import FlowQueries
from .masking import shown_template
from .queries import Queries
from .schedule_queries import ScheduleQueries

log = structlog.get_logger("jetjobs.store")


def used_by_flows(template: RunTemplate, flows: list[str]) -> ApiFailure:
    """The refusal of a delete that would make saved flows fail at their next run."""
    names = ", ".join(f"'{name}'" for name in flows)
    return ApiFailure(
        409,
        f"template {template.id} ({template.name}) is a node of the saved flow(s) {names} of company "
        f"'{template.company}': their runs would fail without it; save them without that node "
        "(`jetjobs flow save FILE`), then delete it",
    )


class TemplateDeletion:
    """The `template.delete` operation."""

    def __init__(self, pool: Any, board: BoardKeeper) -> None:
        self._pool = pool
        self._board = board

    def handlers(self) -> dict[str, Handler]:
        return {"template.delete": _typed("template.delete", api.TemplateRef, self.template_delete)}

    async def template_delete(self, request: api.TemplateRef) -> RunTemplate:
        """Mark it deleted under its row lock, with its audit entry, then take it off the
        board (a failed board write is retried by the keeper's resync)."""
        async with self._pool.acquire() as conn, conn.transaction():
            queries = Queries(conn)
            if not await queries.lock_template(request.id):
                raise resolve.unknown_template(request.id)
            row = await resolve.template(queries, request.id)
            template = row.template
            flows = await FlowQueries(conn).definitions_using_template(template.company, request.id)
            if flows:
                raise used_by_flows(template, flows)
            deleted_at = await ScheduleQueries(conn).delete_template(request.id)
            await audit(conn, "template.delete", template.company, {"id": request.id, "name": template.name})
        await self._board.refresh([request.id])
        log.info("template.deleted", template_id=request.id, company=template.company)
        return shown_template(row).model_copy(update={"deleted_at": deleted_at})
