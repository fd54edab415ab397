"""Logging: readable in a terminal, JSON lines everywhere else."""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from pathlib import Path

import structlog


def _isoformat(_: object, __: str, event: structlog.types.EventDict) -> structlog.types.EventDict:
    """Timestamps as ISO 8601 rather than Python reprs."""
    for key, value in event.items():
        if isinstance(value, datetime):
            event[key] = value.isoformat()
    return event


class _LibraryLogs(logging.Handler):
    """What libraries log through `logging` (asyncpg's pool while PostgreSQL is away,
    say), as one line like jetjobs' own: the error's text instead of a traceback."""

    def emit(self, record: logging.LogRecord) -> None:
        fields: dict[str, str] = {"logger": record.name}
        error = record.exc_info[1] if record.exc_info else None
        if error is not None:
            fields["error"] = f"{type(error).__name__}: {error}"
        structlog.get_logger().log(record.levelno, record.getMessage(), **fields)


def configure(level: str = "info", *, json: bool | None = None, file: Path | None = None) -> None:
    """Set up structlog (from `main`, again from `up` once its home exists; never at
    import) before anything logs: a logger keeps the setup it first logged with. With
    `file`, lines are appended there instead of going to stderr (it stays open for the
    life of the process)."""
    out = sys.stderr if file is None else file.open("a", buffering=1, encoding="utf-8")
    as_json = not out.isatty() if json is None else json
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _isoformat,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(handlers=[_LibraryLogs()], level=logging.WARNING, force=True)


CLIENT_LEVEL = "warning"
"""The level of a client command unless `--log-level` says otherwise. Some run service
code in-process (`credentials rotate-key`, `actor token create --bootstrap`): its info
lines (`credentials.rotated`) are the service's record, not the command's answer,
which the command prints itself; warnings and errors still show."""


def configure_client(level: str | None) -> None:
    """Log as a client command does: at `level` if one was asked for, else `CLIENT_LEVEL`."""
    configure(level or CLIENT_LEVEL)
