"""Shared model configuration and field types."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

Code = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
"""A company code or pool name: lowercase, safe as a NATS subject token."""

JobId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
"""A job id: safe as a subject token and as a `Nats-Msg-Id`."""


def _require_timezone(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a timezone (e.g. 2026-01-01T00:00:00Z)")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_require_timezone)]


class Frozen(BaseModel):
    """Immutable, strict about unknown fields: a typo is an error, not data."""

    model_config = ConfigDict(frozen=True, extra="forbid")
