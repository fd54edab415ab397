"""Turning validation failures into one readable line."""

from __future__ import annotations

from pydantic import ValidationError


def describe(error: ValidationError) -> str:
    """`field.path: problem; …` — what a user needs to fix, without a traceback."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "value"
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)
