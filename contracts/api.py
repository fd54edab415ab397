"""Requests and replies of the store's NATS micro service (`jetjobs.api.*`)."""

from __future__ import annotations

from typing import Any, NamedTuple

from pydantic import BaseModel, Field

from .base import Code, Frozen, JobId
from .enums import Status
from .models import Application, Company, RunTemplate, TemplateSpec, Timeouts
from .records import JobRecord


class CompanyFilter(Frozen):
    company: Code | None = None


class CompanyList(Frozen):
    companies: list[Company]


class AppImport(Frozen):
    document: dict[str, Any] = Field(description="a MultiFlexi app JSON document")
    source: str | None = Field(default=None, description="file name, for error messages")


class AppImported(Frozen):
    app: Application
    created: bool
    warnings: list[str] = []


class AppList(Frozen):
    apps: list[Application]


class TemplateRef(Frozen):
    id: int


class TemplateUpdate(Frozen):
    id: int
    changes: dict[str, Any] = Field(description="fields of TemplateSpec to change")


class TemplateList(Frozen):
    templates: list[RunTemplate]


class RunNow(Frozen):
    id: int = Field(description="template id")
    env: dict[str, str] = {}
    timeouts: Timeouts | None = None
    launched_by: str = "api"


class JobQueued(Frozen):
    job_id: JobId
    company: Code


class JobRef(Frozen):
    id: JobId


class JobQuery(Frozen):
    company: Code | None = None
    template_id: int | None = None
    status: Status | None = None
    limit: int = Field(default=50, ge=1, le=1000)


class JobList(Frozen):
    jobs: list[JobRecord]


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
    "company.list": Operation(CompanyFilter, CompanyList, "List companies"),
    "app.import": Operation(AppImport, AppImported, "Import or update a MultiFlexi application"),
    "app.list": Operation(CompanyFilter, AppList, "List applications"),
    "template.create": Operation(TemplateSpec, RunTemplate, "Create a run template"),
    "template.update": Operation(TemplateUpdate, RunTemplate, "Change fields of a run template"),
    "template.get": Operation(TemplateRef, RunTemplate, "Show one run template"),
    "template.list": Operation(CompanyFilter, TemplateList, "List run templates"),
    "template.run": Operation(RunNow, JobQueued, "Run a template now"),
    "job.get": Operation(JobRef, JobRecord, "Show one job with its attempts"),
    "job.list": Operation(JobQuery, JobList, "List jobs, newest first"),
}
"""Every API operation: its subject is `jetjobs.api.<name>`."""


class ApiFailure(Exception):
    """An API call the store refused; `message` says what was wrong and how to fix it."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
