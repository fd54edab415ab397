"""Names people give (companies, templates, applications) have a length limit when
they are made or changed. Every list and table shows them, and a page of a list is
cut to fit one NATS message: a name of megabytes would fill a page on its own. Names
stored before the limit still load."""

from __future__ import annotations

from contracts.api import ApiFailure

LONGEST = 200
"""Characters a name may have."""


def check_name(what: str, name: str) -> None:
    """Refuse a name over `LONGEST` characters, saying how long it is."""
    if len(name) > LONGEST:
        raise ApiFailure(
            400, f"{what} name is {len(name)} characters long: give one of at most {LONGEST} characters"
        )
