"""Templates as the board carries them, for the scheduler's pure tests (no servers)."""

from __future__ import annotations

from contracts.models import ActiveTemplate

BOARD_FIELDS: dict[str, object] = {
    "id": 1,
    "revision": "r1",
    "name": "t",
    "company": "acme",
    "pool": "default",
    "app_id": 1,
    "executable": "/bin/true",
    "cron": "* * * * * *",
}
"""A per-second template of company acme, to override field by field."""


def active_template(**fields: object) -> ActiveTemplate:
    """The board's template with `fields` changed."""
    return ActiveTemplate.model_validate(BOARD_FIELDS | fields)
