"""What an exit code means for one application: success, worth a retry, or final."""

from __future__ import annotations

from enum import Enum

from contracts.lifecycle import ExitCodes

DEFAULT = ExitCodes()
"""Only 0 succeeds: the declaration of an application that declares none."""


class ExitClass(Enum):
    """The three meanings an application may give its exit codes."""

    SUCCESS = "success"
    RETRY = "retry"
    FINAL = "final"


def classify(code: int, codes: ExitCodes | None) -> ExitClass:
    """Without a declaration only 0 succeeds and every failure may be retried; with
    one, unlisted failures are retried unless the application lists `retry` codes,
    in which case only those are."""
    declared = codes or DEFAULT
    if code in declared.success:
        return ExitClass.SUCCESS
    if code in declared.final:
        return ExitClass.FINAL
    if not declared.retry or code in declared.retry:
        return ExitClass.RETRY
    return ExitClass.FINAL
