"""Requests and replies of the store's NATS micro service (`jetjobs.api.*`)."""

from __future__ import annotations

from typing import Any, NamedTuple

from pydantic import BaseModel, Field, field_validator, model_validator

from . import flows as fl
from . import lifecycle as lc
from . import retention as rt
from . import schedule as sc
from . import tenants as t
from .base import Code, EnvVars, Frozen, JobId, NextPage, Paged, RowId
from .enums import Status
from .models import Application, BoundedTimeouts, Company, RunTemplate, TemplateSpec
from .records import JobRecord


class CompanyFilter(Frozen):
    company: Code | None = None


class CompanyQuery(CompanyFilter, Paged):
    """One page of companies, by code: a host of thousands of tenants would not fit
    in one NATS message."""


class CompanyList(Frozen):
    companies: list[Company]
    more: bool = False
    """Companies follow this page (see `Paged`)."""
    next: NextPage = None


class AppImport(Frozen):
    document: dict[str, Any] = Field(description="a MultiFlexi app JSON document")
    source: str | None = Field(default=None, description="file name, for error messages")


class AppImported(Frozen):
    app: Application
    created: bool
    warnings: list[str] = []


class AppQuery(CompanyFilter, Paged):
    """One page of the application catalog, by name (then id): it grows without bound,
    and an app's declared environment alone may take tens of kilobytes."""


class AppList(Frozen):
    apps: list[Application]
    more: bool = False
    """Applications follow this page (see `Paged`)."""
    next: NextPage = None


class TemplateRef(Frozen):
    id: RowId


class TemplateUpdate(Frozen):
    """Changes to a template, applied in one transaction under its row lock, so
    concurrent updates of different env keys both take effect."""

    id: RowId
    changes: dict[str, Any] = Field(
        default={}, description="fields of TemplateSpec to change; `env` replaces the whole environment"
    )
    set_env: EnvVars = Field(
        default={}, description="environment variables to add or replace (after `changes`); others are kept"
    )
    unset_env: list[str] = Field(
        default=[], description="environment variables to remove (after `set_env`); absent ones are ignored"
    )

    @model_validator(mode="after")
    def _set_or_unset(self) -> TemplateUpdate:
        both = sorted(set(self.set_env) & set(self.unset_env))
        if both:
            raise ValueError(f"{', '.join(both)}: both set and unset; give each variable once")
        return self


class TemplateQuery(CompanyFilter, Paged):
    """One page of templates, by company code, name and id: thousands of them would
    not fit in one NATS message."""

    deleted: bool = Field(default=False, description="list the deleted templates instead of the live ones")


class TemplateList(Frozen):
    templates: list[RunTemplate]
    more: bool = False
    """Templates follow this page (see `Paged`)."""
    next: NextPage = None


class RunNow(Frozen):
    id: RowId = Field(description="template id")
    env: EnvVars = {}
    timeouts: BoundedTimeouts | None = None
    launched_by: str = "api"
    key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description=(
            "idempotency key: a request with the key of an earlier one on the same template gets "
            "that run's job back (`existing`) instead of running again, for as long as the job is kept"
        ),
    )

    @field_validator("launched_by")
    @classmethod
    def _not_a_flow(cls, value: str) -> str:
        if value.startswith(fl.LAUNCHER):
            raise ValueError(
                f"'{fl.LAUNCHER}…' is reserved for the jobs of flow runs: "
                "start a flow with `flow.run`, or name another launcher"
            )
        return value


class JobQueued(Frozen):
    job_id: JobId
    company: Code
    existing: bool | None = Field(
        default=None,
        description="true when the request's `key` named a run queued before: this is its job, not a new one",
    )


class JobRef(Frozen):
    id: JobId


class JobQuery(Frozen):
    """One page of jobs, newest first: a page holds at most `limit` jobs, fewer when
    more would not fit in one NATS message (a job's argv may be long)."""

    company: Code | None = None
    template_id: RowId | None = None
    status: Status | None = None
    limit: int = Field(default=50, ge=1, le=1000)
    after: str | None = Field(
        default=None,
        min_length=1,
        description="the `next` of the previous page's reply, unchanged: the older jobs follow its last one",
    )


class JobList(Frozen):
    """Jobs without their output (`stdout`, `stderr`), which `job.get` gives: a page of
    jobs with 256 KiB of output each (the default limit) would not fit in one NATS message."""

    jobs: list[JobRecord]
    more: bool = False
    """Older jobs follow this page: ask again with `after` set to `next`."""
    next: NextPage = None


class ApiError(Frozen):
    """The body of an error reply; `code` follows HTTP (400 bad input, 404 unknown)."""

    error: str
    code: int


class Operation(NamedTuple):
    request: type[BaseModel]
    reply: type[BaseModel]
    description: str


OPERATIONS: dict[str, Operation] = {
    "company.create": Operation(Company, Company, "Create a company (tenant)"),
    "company.list": Operation(CompanyQuery, CompanyList, "List companies, a page at a time"),
    "app.import": Operation(AppImport, AppImported, "Import or update a MultiFlexi application"),
    "app.list": Operation(AppQuery, AppList, "List applications, a page at a time"),
    "template.create": Operation(TemplateSpec, RunTemplate, "Create a run template"),
    "template.update": Operation(TemplateUpdate, RunTemplate, "Change fields of a run template"),
    "template.get": Operation(TemplateRef, RunTemplate, "Show one run template"),
    "template.list": Operation(TemplateQuery, TemplateList, "List run templates, a page at a time"),
    "template.run": Operation(RunNow, JobQueued, "Run a template now"),
    "job.get": Operation(JobRef, JobRecord, "Show one job with its attempts"),
    "job.list": Operation(JobQuery, JobList, "List jobs, newest first, without their output"),
    "job.cancel": Operation(
        JobRef, lc.CancelReply, "Cancel a job: queued ones never start, running ones are killed"
    ),
    "dlq.list": Operation(
        lc.DeadLetterQuery, lc.DeadLetterList, "List dead letters, newest first, without their messages"
    ),
    "dlq.get": Operation(lc.DeadLetterRef, lc.DeadLetterRecord, "Show one dead letter with its message"),
    "dlq.replay": Operation(
        lc.DeadLetterRef, lc.Replayed, "Run a dead letter's job again with a fresh retry budget"
    ),
    "runner.list": Operation(lc.RunnerQuery, lc.RunnerList, "List live executors (runners)"),
    "credential.set": Operation(
        t.CredentialSet, t.CredentialInfo, "Create or replace a company credential set"
    ),
    "credential.list": Operation(t.CredentialFilter, t.CredentialList, "List a company's credential sets"),
    "credential.assign": Operation(t.CredentialAssign, t.Assigned, "Assign a credential set to a template"),
    "credential.unassign": Operation(
        t.CredentialAssign, t.Assigned, "Stop a template using a credential set"
    ),
    "credential.delete": Operation(
        t.CredentialRef,
        t.CredentialInfo,
        "Delete a credential set no live template uses and no unfinished job needs",
    ),
    "secrets.fetch": Operation(t.SecretsRequest, t.SecretsReply, "Credential values for a running job"),
    "template.env": Operation(TemplateRef, t.TemplateEnv, "A template's merged environment, masked"),
    "artifact.put": Operation(t.ArtifactUpload, t.ArtifactInfo, "Store one artifact of a job"),
    "artifact.list": Operation(t.ArtifactQuery, t.ArtifactList, "List a job's artifacts, a page at a time"),
    "artifact.get": Operation(t.ArtifactRef, t.ArtifactContent, "Download one artifact"),
    "app.export": Operation(t.AppRef, t.AppDocument, "An application as MultiFlexi app JSON"),
    "actor.grant": Operation(t.ActorGrant, t.ActorList, "Give an actor a role in a company"),
    "actor.revoke": Operation(t.ActorRevoke, t.ActorList, "Take a role away from an actor in a company"),
    "actor.list": Operation(t.CredentialFilter, t.ActorList, "List a company's actors"),
    "audit.list": Operation(t.AuditQuery, t.AuditList, "Read the audit log, newest first"),
    "token.create": Operation(t.TokenCreate, t.TokenIssued, "Issue an API token to an actor (admins only)"),
    "token.revoke": Operation(t.TokenRef, t.TokenInfo, "Revoke an API token (admins only)"),
    "token.list": Operation(
        t.TokenFilter, t.TokenList, "List API tokens, a page at a time, never their values (admins only)"
    ),
    "template.pause": Operation(TemplateRef, RunTemplate, "Pause a template: its slots are skipped"),
    "template.resume": Operation(TemplateRef, RunTemplate, "Resume a paused template"),
    "template.delete": Operation(
        TemplateRef, RunTemplate, "Delete a template: it stops running, its history stays readable"
    ),
    "company.pause": Operation(sc.CompanyRef, sc.CompanyPaused, "Pause every template of a company"),
    "company.resume": Operation(sc.CompanyRef, sc.CompanyPaused, "Resume a paused company"),
    "template.backfill": Operation(
        sc.Backfill, sc.BackfillReply, "Run the slots of a time range not run yet"
    ),
    "template.explain": Operation(sc.ExplainRequest, sc.Explanation, "Why a template runs or does not"),
    "flow.validate": Operation(fl.FlowSpec, fl.FlowChecked, "Check a flow definition against the store"),
    "flow.save": Operation(fl.FlowSpec, fl.FlowChecked, "Check a flow definition and keep it for templates"),
    "flow.run": Operation(fl.FlowRunRequest, fl.FlowRun, "Start a run of a flow (a DAG of jobs)"),
    "flow.get": Operation(fl.FlowRef, fl.FlowRun, "Show one flow run with its nodes and results"),
    "flow.list": Operation(fl.FlowQuery, fl.FlowRunList, "List flow runs, newest first, without their nodes"),
    "flow.cancel": Operation(
        fl.FlowRef, fl.FlowCancelled, "Cancel a flow run: running nodes killed, rest skipped"
    ),
    "flow.retry": Operation(fl.FlowRef, fl.FlowRun, "Re-run the failed and skipped nodes of a flow run"),
    "history.prune": Operation(
        rt.PruneRequest, rt.Pruned, "Remove (or count) final history older than a horizon (admins only)"
    ),
}
"""Every API operation: its subject is `jetjobs.api.<name>`."""


class ApiFailure(Exception):
    """An API call the store refused; `message` says what was wrong and how to fix it."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
