"""Turning validation failures into one readable line."""

from __future__ import annotations

from pydantic import ValidationError


def describe(error: ValidationError) -> str:
    """`field.path: problem; …` — what a user needs to fix, without a traceback."""
    parts = []
    for item in error.errors():
        where = _place(item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _place(loc: tuple[int | str, ...]) -> str:
    """The field a problem is in; a bad mapping key is named by its message, so the
    path stops at the mapping (`env`, not `env.1FOO.[key]`). A problem of the whole
    request (a check across fields) has no place."""
    if loc and loc[-1] == "[key]":
        loc = loc[:-2]
    return ".".join(str(p) for p in loc)
