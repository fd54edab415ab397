"""Shared model configuration and field types."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic import AwareDatetime as PydanticAwareDatetime

Code = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
"""A company code or pool name: lowercase, safe as a NATS subject token."""

JobId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
"""A job id: safe as a subject token and as a `Nats-Msg-Id`."""

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
"""The instants a message may carry. Adding the longest timeout (ten years) to
LATEST stays within Python's datetime (year 9999) and Postgres; without a bound,
a year-9999 instant plus a timeout, or moved to UTC, overflows."""

INT4_MAX = 2**31 - 1
"""The largest Postgres `integer` (attempt numbers, retries)."""

INT8_MAX = 2**63 - 1
"""The largest Postgres `bigint`."""

Int8 = Annotated[int, Field(ge=-INT8_MAX - 1, le=INT8_MAX)]
"""A number Postgres stores as `bigint` (ids, pids, exit codes)."""

RowId = Annotated[int, Field(ge=1, le=INT8_MAX)]
"""The id of a row (a template, a token): a Postgres `bigint` identity, so one past
its range is refused as such, not by the database."""

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
"""What an environment variable's name may hold: a shell variable's name, as
`cmdparams` placeholders take (contracts.cmdline). A process cannot be started with
one empty or holding `=`, and a shell cannot read one with other characters; every
MultiFlexi application's names fit."""


JOB_ID_VAR = "JETJOBS_JOB_ID"
ATTEMPT_VAR = "JETJOBS_ATTEMPT"
COMPANY_VAR = "JETJOBS_COMPANY"
RESULT_FILE_VAR = "JETJOBS_RESULT_FILE"
"""The file a job writes a JSON object of results to."""
RESERVED_ENV = frozenset({JOB_ID_VAR, ATTEMPT_VAR, COMPANY_VAR, RESULT_FILE_VAR})
"""The variables the executor sets for every job, over any given value: one given
would be listed as the job's while the job got another."""


NAME_RULE = "give letters, digits and _ only, not starting with a digit (e.g. API_TOKEN)"


def _env_name(name: str) -> str:
    if not re.fullmatch(ENV_NAME, name):
        raise ValueError(f"{name!r} is not an environment variable name: {NAME_RULE}")
    return name


STORED = "stored"
"""The validation context key of what was accepted once and is read back (a stored flow):
a name reserved since then is let through there, as the executor sets it over any value."""


def reserved_refusal(name: str) -> str | None:
    """Why `name` cannot be given (it is one of RESERVED_ENV), or None: one message for every
    place a job's variable is named (an env, a credential field, an app's environment)."""
    if name in RESERVED_ENV:
        return f"{name} is set by jetjobs for every job and cannot be given: remove it"
    return None


def _not_reserved(name: str, info: ValidationInfo) -> str:
    refusal = reserved_refusal(name)
    if refusal and not (info.context or {}).get(STORED):
        raise ValueError(refusal)
    return name


def _env_value(value: str) -> str:
    if "\x00" in value:
        raise ValueError("holds a NUL byte, which no environment variable can carry: remove it")
    return value


EnvName = Annotated[str, AfterValidator(_env_name), AfterValidator(_not_reserved)]
"""The name of an environment variable a job is given (see ENV_NAME)."""

EnvVars = Annotated[
    dict[EnvName, Annotated[str, AfterValidator(_env_value)]],
    WithJsonSchema(
        {
            "type": "object",
            "propertyNames": {"pattern": ENV_NAME, "not": {"enum": sorted(RESERVED_ENV)}},
            "additionalProperties": {"type": "string", "pattern": "^[^\\x00]*$"},
        }
    ),
]
"""Environment variables for a job, checked where they enter: a name or value the
process cannot be started with would fail every job that carries it, far from where
it was given, without naming it."""


def env_refusal(env: Mapping[str, str]) -> str | None:
    """Why no process can be started with `env` (its first name or value that cannot
    be given), or None. Asked only when a start failed: checking every message's env
    as it is decoded cost each job more than the few that carry a bad one."""
    for name, value in env.items():
        try:
            _env_name(name)
        except ValueError as error:
            return f"env: {error}"
        try:
            _env_value(value)
        except ValueError as error:
            return f"env: {name} {error}"
    return None


JobEnv = Annotated[
    dict[str, str],
    WithJsonSchema(
        {
            "type": "object",
            "propertyNames": {"pattern": ENV_NAME},
            "additionalProperties": {"type": "string", "pattern": "^[^\\x00]*$"},
        }
    ),
]
"""A job message's environment. Its JSON Schema gives the names and values a process
can be started with (see EnvVars); the models do not check them as a message is
decoded, and a job whose process cannot be started for one ends `invalid` naming it
(`env_refusal`)."""


INSTANT_PATTERN = r"^(19[7-9][0-9]|[2-8][0-9]{3}|9000)-"
"""The years of EARLIEST..LATEST, for JSON Schema, which has no bounds for a date-time
(`formatMinimum` is not standard): an instant within a day of a bound given with an offset
may still be refused, by its time in UTC."""

AwareDatetime = Annotated[
    PydanticAwareDatetime,
    Field(ge=EARLIEST, le=LATEST),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": INSTANT_PATTERN,
            "description": "with a timezone, from 1970-01-01T00:00:00Z to 9000-12-31T23:59:59.999999Z",
        }
    ),
]
"""An instant a message or request carries: with a timezone, within EARLIEST..LATEST
(checked by pydantic's own validator: a Python one per instant doubled the cost
of decoding an event). Its JSON Schema says so, so a client's validation refuses Go's
zero time (0001-01-01T00:00:00Z), which the models refuse."""

RecordedDatetime = PydanticAwareDatetime
"""An instant read back from the record: any the database holds is shown, so a row
stored before the range was checked still lists."""


class Frozen(BaseModel):
    """Immutable, strict about unknown fields: a typo is an error, not data."""

    model_config = ConfigDict(frozen=True, extra="forbid")


NextPage = Annotated[
    str | None,
    Field(description="set when `more`: send it as `after` to read the page that follows"),
]
"""The cursor a page of a list gives for the next (see `Paged`): opaque, so a client
need not know what the list is ordered by."""


class Paged(Frozen):
    """One page of a list that may not fit in one NATS message (`max_payload`): the
    reply says `more` when items follow, and gives `next`, the cursor to send as
    `after` for the page that follows (the store cuts a page short of `limit` when
    its items would not fit). A page read by cursor starts right after the last item
    read, whatever was added or removed meanwhile; one read by `offset` skips an item
    when one before it was removed, and repeats one when one was added."""

    after: str | None = Field(
        default=None,
        min_length=1,
        description="the `next` of the previous page's reply, unchanged: this page follows its last item",
    )
    offset: int = Field(
        default=0,
        ge=0,
        le=INT4_MAX,
        description="items to skip instead (older clients): skips or repeats items the list changes meanwhile",
    )
    limit: int = Field(default=500, ge=1, le=1000)

    @model_validator(mode="after")
    def _one_start(self) -> Paged:
        if self.after is not None and self.offset:
            raise ValueError("give `after` (the cursor of the previous page) or `offset`, not both")
        return self
