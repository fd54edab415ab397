"""Stopping a cancelled flow run's running jobs: what the flow outbox does with
its `kill` rows, after the cancel committed, and again after a crash."""

from __future__ import annotations

from typing import Any

from bus import Bus, CancelBoard
from contracts.api import ApiFailure, JobRef

from .lifecycle_api import LifecycleApi

CANCELLED = "cancelled by request"
"""Why a cancelled run ended, and its nodes that had not (as `job.cancel` says of a job)."""


class Killer:
    """Stops a node's job as `job.cancel` does; safe to repeat."""

    def __init__(self, pool: Any, bus: Bus) -> None:
        self._bus = bus
        self._lifecycle = LifecycleApi(pool, bus)

    async def kill(self, job_id: str) -> bool:
        """Ask every executor to stop the job (a queued one ends at once); False when
        it had already ended. A job dispatched a moment ago may not be recorded yet:
        executors refuse it once it is on the cancel board. Raises when the cancel
        could not be recorded now (NATS or Postgres away): try again later."""
        try:
            await self._lifecycle.job_cancel(JobRef(id=job_id))
        except ApiFailure as error:
            if error.code == 409:
                return False
            if error.code != 404:
                raise
            await (await CancelBoard.open(self._bus.js)).mark(job_id, CANCELLED)
        return True
