"""A job's log events: the same at info level, and no bound logger when the level drops them."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import LogCapture

from executor import joblog
from executor.joblog import JobLog


def logger_at(level: int) -> object:
    return structlog.wrap_logger(None, wrapper_class=structlog.make_filtering_bound_logger(level))


@pytest.fixture
def capture() -> Iterator[LogCapture]:
    old = structlog.get_config()
    capture = LogCapture()
    structlog.configure(processors=[capture])
    try:
        yield capture
    finally:
        structlog.configure(**old)


def test_info_events_carry_the_jobs_identity(capture: LogCapture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(joblog, "log", logger_at(logging.INFO))
    jlog = JobLog(job_id="j1", company="acme", template=None, attempt=2)
    jlog.debug("job.acknowledged", runner="r1")
    jlog.info("job.finished", status="processed")
    jlog.warning("job.released", reason="late")
    identity = {"job_id": "j1", "company": "acme", "template": None, "attempt": 2}
    assert capture.entries == [
        identity | {"status": "processed", "event": "job.finished", "log_level": "info"},
        identity | {"reason": "late", "event": "job.released", "log_level": "warning"},
    ]


def test_debug_events_come_through_at_debug_level(
    capture: LogCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(joblog, "log", logger_at(logging.DEBUG))
    jlog = JobLog(job_id="j1", company="acme", template=None, attempt=1)
    jlog.debug("job.started", pid=42)
    assert [(e["event"], e["pid"], e["log_level"]) for e in capture.entries] == [("job.started", 42, "debug")]


def test_a_level_that_drops_info_binds_nothing_for_it(
    capture: LogCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(joblog, "log", logger_at(logging.WARNING))
    jlog = JobLog(job_id="j1", company="acme", template=None, attempt=1)
    jlog.info("job.acknowledged", runner="r1")
    assert not jlog.informs and jlog._bound is None
    jlog.warning("job.released", reason="late")
    assert [(e["event"], e["job_id"]) for e in capture.entries] == [("job.released", "j1")]
