"""A job's logger, bound to the job only for events its level lets through."""

from __future__ import annotations

import logging
from typing import Any

import structlog
from structlog.typing import FilteringBoundLogger

log = structlog.get_logger("jetjobs.executor")


def enabled(level: int) -> bool:
    """Whether the executor's logger lets events at `level` through."""
    check = getattr(log.bind(), "is_enabled_for", None)
    return True if check is None else bool(check(level))


class JobLog:
    """Logs one attempt's events with the job's identity (its context). The bound
    logger is built at the first event that is let through: at the usual level
    (warning) a job that goes well logs nothing, and binding one for every job
    cost more than all of its logging."""

    __slots__ = ("_bound", "_context", "informs")

    def __init__(self, **context: Any) -> None:
        self._context = context
        self._bound: FilteringBoundLogger | None = None
        self.informs = enabled(logging.INFO)
        """Whether info events are let through (worth building their fields)."""

    def debug(self, event: str, **fields: Any) -> None:
        """Only where info is let through too (the bound logger drops it below debug)."""
        if self.informs:
            self._logger().debug(event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        if self.informs:
            self._logger().info(event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        if self.informs or enabled(logging.WARNING):
            self._logger().warning(event, **fields)

    def _logger(self) -> FilteringBoundLogger:
        if self._bound is None:
            self._bound = log.bind(**self._context)
        return self._bound
