"""Requests and replies of the tenant API: credentials, layered environments,
secrets fetched just in time, artifacts, application export, actors and audit."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .base import (
    ENV_NAME,
    INT4_MAX,
    INT8_MAX,
    AwareDatetime,
    Code,
    Frozen,
    Int8,
    JobId,
    NextPage,
    Paged,
    RowId,
    reserved_refusal,
)

Role = Literal["admin", "reader", "executor"]


def tenant_consumer(company: str, pool: str) -> str:
    """The durable consumer one company's executors of a pool pull from, when
    NATS permissions confine them to their company (deploy/nats/isolation.conf)."""
    return f"exec_{pool}__{company}"


class CredentialSet(Frozen):
    """A company's credential values: sent once, stored encrypted, never shown again."""

    company: Code
    name: str = Field(min_length=1, max_length=100)
    kind: str = Field(default="", description="credential type, e.g. abraflexi or csas")
    values: dict[str, str] = Field(min_length=1)

    @field_validator("values")
    @classmethod
    def _names(cls, values: dict[str, str]) -> dict[str, str]:
        bad = [name for name in values if not re.fullmatch(ENV_NAME, name)]
        if bad:
            raise ValueError(
                f"{', '.join(bad)}: credential fields are environment variable names (A-Z, 0-9, _)"
            )
        refusals = [refusal for name in values if (refusal := reserved_refusal(name))]
        if refusals:
            raise ValueError(refusals[0])
        return values


class CredentialInfo(Frozen):
    """A credential set as anyone may see it: its field names, never its values."""

    company: Code
    name: str
    kind: str = ""
    fields: list[str]
    updated_at: AwareDatetime | None = None


class CredentialList(Frozen):
    credentials: list[CredentialInfo]


class CredentialFilter(Frozen):
    company: Code


class CredentialAssign(Frozen):
    template_id: RowId
    name: str = Field(min_length=1, description="credential set of the template's company")


class Assigned(Frozen):
    template_id: int
    credentials: list[str]


class CredentialRef(Frozen):
    """One of a company's credential sets, by name."""

    company: Code
    name: str = Field(min_length=1, max_length=100)


class SecretsRequest(Frozen):
    """An executor asking for the values a job message only names."""

    job_id: JobId
    company: Code
    template_id: Int8 | None = Field(
        default=None,
        description="the job's template; None for a job that runs an application directly "
        "(a flow's `app:` node), which is served only the values sealed for it",
    )
    names: list[str] = Field(min_length=1)


class SecretsReply(Frozen):
    values: dict[str, str]


class EnvEntry(Frozen):
    """One variable of a template's merged environment, with where its value came from."""

    name: str
    value: str | None = Field(description="masked when secret; None when unset")
    source: str = Field(description="app default, credential <name>, template, or unset")
    secret: bool = False
    required: bool = False


class TemplateEnv(Frozen):
    template_id: int
    entries: list[EnvEntry]
    missing: list[str] = Field(default=[], description="required variables without a value")


class ArtifactUpload(Frozen):
    """One collected file (or the record that it was over a limit)."""

    job_id: JobId
    company: Code
    attempt: int = Field(ge=1, le=INT4_MAX)
    name: str = Field(min_length=1, max_length=255)
    path: str = ""
    content_type: str = "application/octet-stream"
    size: int = Field(ge=0, le=INT8_MAX)
    sha256: str = Field(
        default="",
        pattern=r"^([0-9a-f]{64})?$",
        description="the hex SHA-256 of the file, which the store checks `content` against: "
        "required with `content`, may be empty without",
    )
    content: str | None = Field(default=None, description="base64; None when over a limit or missing")
    over_limit: bool = False
    missing: bool = Field(
        default=False, description="declared by the application, but the job left no such file"
    )
    note: str | None = None

    @model_validator(mode="after")
    def _checksum_with_content(self) -> ArtifactUpload:
        if self.content is not None and not self.sha256:
            raise ValueError(
                "`sha256` is required with `content`: give the hex SHA-256 of the file's bytes, "
                "so the store can check that what it keeps is what the job left"
            )
        return self


class ArtifactInfo(Frozen):
    job_id: str
    attempt: int
    name: str
    path: str = ""
    content_type: str
    size: int
    sha256: str
    over_limit: bool = False
    missing: bool = False
    note: str | None = None


class ArtifactQuery(Paged):
    """One page of a job's artifacts, by attempt and name: a glob may match thousands
    of files."""

    id: JobId = Field(description="job id")


class ArtifactList(Frozen):
    artifacts: list[ArtifactInfo]
    more: bool = False
    """Artifacts follow this page (see `Paged`)."""
    next: NextPage = None


class ArtifactRef(Frozen):
    job_id: JobId
    name: str
    attempt: int | None = Field(
        default=None,
        ge=1,
        le=INT4_MAX,
        description="that attempt's record of the name; without it, the latest attempt that left the file",
    )


class ArtifactContent(Frozen):
    info: ArtifactInfo
    content: str | None = Field(description="base64")


class AppRef(Frozen):
    id: str = Field(min_length=1, description="application id or uuid")


class AppDocument(Frozen):
    document: dict[str, Any]


ACTOR_LONGEST = 200
"""Characters an actor's name may have, wherever it is given (a grant, a token, a header)."""


class ActorGrant(Frozen):
    company: Code
    actor: str = Field(min_length=1, max_length=ACTOR_LONGEST)
    role: Role
    close: bool = Field(
        default=False,
        description="the first grant closes a company open to every actor: without this, one that "
        "would lock the caller itself out is refused",
    )


class ActorRevoke(Frozen):
    company: Code
    actor: str = Field(min_length=1, max_length=ACTOR_LONGEST)
    role: Role


class ActorEntry(Frozen):
    actor: str
    role: Role


class ActorList(Frozen):
    company: Code
    actors: list[ActorEntry]
    locked_out: list[str] = Field(
        default=[],
        description="of a grant that closed the company: actors that acted in it recently (by the "
        "audit log) and may not act in it any more",
    )
    warnings: list[str] = Field(
        default=[], description="what the change did beyond the list: closing or opening the company"
    )


class AuditQuery(Frozen):
    company: Code | None = None
    limit: int = Field(default=50, ge=1, le=1000)
    before: int | None = Field(
        default=None,
        ge=1,
        le=INT8_MAX,
        description="the id of the last entry of the previous page: the older ones follow it",
    )


class AuditEntry(Frozen):
    id: int = Field(description="the entry's place in the log, for `before`")
    at: AwareDatetime
    actor: str
    action: str
    company: str | None = None
    detail: dict[str, Any] = {}


class AuditList(Frozen):
    entries: list[AuditEntry]
    more: bool = False
    """Older entries follow: ask again with `before` set to the last one's id."""


class Done(Frozen):
    ok: bool = True


class TokenCreate(Frozen):
    """Issue an API token to an actor; its value is shown once, then only its hash is kept."""

    actor: str = Field(min_length=1, max_length=ACTOR_LONGEST)
    admin: bool = Field(default=False, description="may issue, list and revoke tokens")
    note: str = Field(default="", max_length=200)


class TokenInfo(Frozen):
    id: int
    actor: str
    admin: bool = False
    note: str = ""
    created_by: str
    created_at: AwareDatetime
    revoked_at: AwareDatetime | None = None


class TokenIssued(Frozen):
    info: TokenInfo
    token: str = Field(description="send it in the Jetjobs-Token header; it cannot be shown again")


class TokenRef(Frozen):
    id: RowId


class TokenFilter(Paged):
    """One page of tokens, newest first: revoked ones are kept, so they only accumulate."""

    actor: str | None = None


class TokenList(Frozen):
    tokens: list[TokenInfo]
    more: bool = False
    """Tokens follow this page (see `Paged`)."""
    next: NextPage = None
