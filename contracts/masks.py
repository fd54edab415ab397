"""How a secret value is hidden, the same wherever it would show: in a job's output
and results (the executor) and in the store's replies."""

from __future__ import annotations

from collections.abc import Iterable

MASK = "********"

SHORTEST = 2
"""Characters of the shortest value masked inside a longer text: a one-character
value would mask that character everywhere, and hides nothing anyone could not guess."""


def maskable(values: Iterable[str]) -> list[str]:
    """The values to look for in a text, longest first, so a value inside a longer one
    is masked as part of it."""
    return sorted({value for value in values if len(value) >= SHORTEST}, key=len, reverse=True)
