"""Limits on what people store, checked when it is made or changed: every answer of
the API is one NATS message, and a list page is cut to fit one, so a name of
megabytes, or a template or application larger than a message, would make its list
fail for everyone who reads it. What was stored before the limits still loads."""

from __future__ import annotations

from pydantic import BaseModel

from bus import encode
from contracts.api import ApiFailure

LONGEST = 200
"""Characters a name may have."""


def check_name(what: str, name: str) -> None:
    """Refuse a name over `LONGEST` characters, saying how long it is."""
    if len(name) > LONGEST:
        raise ApiFailure(
            400, f"{what} name is {len(name)} characters long: give one of at most {LONGEST} characters"
        )


LARGEST = 256 * 1024
"""Bytes a template or an application may take as the API gives it: a page of a list
holds several, and a job message carries a template's environment."""


def check_size(what: str, item: BaseModel) -> None:
    """Refuse an item over `LARGEST` bytes as the API would give it, saying how large it is."""
    size = len(encode(item))
    if size > LARGEST:
        raise ApiFailure(
            400,
            f"{what} takes {size} bytes as stored: at most {LARGEST} are kept; "
            "make its environment smaller (large data belongs in files or credentials)",
        )
