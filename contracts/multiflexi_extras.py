"""The parts of a MultiFlexi app file beyond the basics: declared artifacts and exit codes."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from .errors import describe
from .lifecycle import ExitCodes
from .models import ArtifactSpec

CLASSES = {
    "success": "success",
    "ok": "success",
    "done": "success",
    "retry": "retry",
    "transient": "retry",
    "temporary": "retry",
    "failure": "final",
    "fail": "final",
    "error": "final",
    "final": "final",
    "fatal": "final",
}
"""Words app files use for what an exit code means, mapped to jetjobs' classes."""


class ExtrasError(ValueError):
    """A declared artifact or exit code jetjobs cannot use; the message names the field."""


def _artifact(index: int, item: Any) -> ArtifactSpec:
    if isinstance(item, str):
        item = {"path": item}
    if not isinstance(item, dict):
        raise ExtrasError(f"artifacts[{index}]: expected a path or an object with 'path'")
    path = item.get("path") or item.get("pattern") or item.get("glob") or ""
    try:
        return ArtifactSpec(
            path=str(path),
            name=str(item.get("name") or ""),
            content_type=str(item.get("content_type") or item.get("type") or ""),
            description=_text(item.get("description")),
        )
    except ValidationError as error:
        raise ExtrasError(f"artifacts[{index}]: {describe(error)}") from None


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("en", next(iter(value.values()), "")) or "")
    return "" if value is None else str(value)


def artifacts(raw: Any) -> list[ArtifactSpec]:
    """`artifacts`: a list of paths/globs, or objects with path, name, content type."""
    if raw in (None, "", []):
        return []
    if not isinstance(raw, list):
        raise ExtrasError("artifacts: expected a list of paths or objects with 'path'")
    return [_artifact(i, item) for i, item in enumerate(raw)]


def _entries(raw: Any) -> list[tuple[Any, Any]]:
    """(code, meaning) pairs from a list of objects or an object keyed by code."""
    if isinstance(raw, dict):
        return [(code, meaning) for code, meaning in raw.items()]
    if isinstance(raw, list):
        return [(item.get("code"), item) if isinstance(item, dict) else (item, None) for item in raw]
    raise ExtrasError("exitCodes: expected a list of {code, meaning} objects or an object keyed by code")


def _meaning(meaning: Any) -> str:
    if isinstance(meaning, dict):
        word = meaning.get("meaning") or meaning.get("type") or meaning.get("status") or meaning.get("class")
        return str(word or "").lower()
    return str(meaning or "").lower()


def _code(code: Any) -> int:
    try:
        return int(code)
    except (TypeError, ValueError):
        raise ExtrasError(f"exitCodes: {code!r} is not an exit code (a whole number)") from None


def exit_codes(raw: Any, warnings: list[str]) -> ExitCodes | None:
    """`exitCodes` in its spellings; codes without a known meaning are left to the default (0 succeeds)."""
    if raw in (None, "", [], {}):
        return None
    if isinstance(raw, dict) and set(raw) <= {"success", "retry", "final"}:
        try:
            return ExitCodes.model_validate(raw)
        except ValidationError as error:
            raise ExtrasError(f"exitCodes: {describe(error)}") from None
    classes: dict[str, list[int]] = {"success": [], "retry": [], "final": []}
    for code, meaning in _entries(raw):
        number, word = _code(code), _meaning(meaning)
        target = CLASSES.get(word)
        if target is None:
            if number != 0:
                warnings.append(f"exitCodes: code {number} has no meaning jetjobs knows ({word or 'none'})")
            target = "success" if number == 0 else None
        if target is not None:
            classes[target].append(number)
    if not classes["success"]:
        classes["success"] = [0]
    try:
        return ExitCodes(**classes)
    except ValidationError as error:
        raise ExtrasError(f"exitCodes: {describe(error)}") from None
