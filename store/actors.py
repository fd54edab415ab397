"""Who may do what: each API request is made as an actor (the `Jetjobs-Actor`
header), checked against the company's admins, readers and executors, and
every change is written to the audit log.

A company that lists no actors is open to every caller, which keeps a single
operator's setup simple; granting the first role closes it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import structlog
from pydantic import BaseModel

from bus.api import current_actor
from contracts import api
from contracts.api import ApiFailure
from contracts.models import Company, TemplateSpec

from .tenant_queries import TenantQueries

log = structlog.get_logger("jetjobs.store")

Need = Literal["read", "change", "execute"]
Handler = Callable[[BaseModel], Awaitable[BaseModel]]

ALLOWED: dict[Need, frozenset[str]] = {
    "read": frozenset({"admin", "reader"}),
    "change": frozenset({"admin"}),
    "execute": frozenset({"executor"}),
}


async def require(db: Any, company: str, need: Need) -> str:
    """The calling actor, if it may `need` in `company`; otherwise a 403 saying who may."""
    actor = current_actor.get()
    roles, closed = await TenantQueries(db).actor_roles(company, actor)
    permit(actor, company, need, roles, closed)
    return actor


def permit(actor: str, company: str, need: Need, roles: set[str], closed: bool) -> None:
    """A 403 saying who may, unless `roles` (or a company open to everyone) allow `need`."""
    if closed and not roles & ALLOWED[need]:
        wanted = " or ".join(sorted(ALLOWED[need]))
        log.warning("api.refused", actor=actor, company=company, need=need)
        raise ApiFailure(
            403,
            f"actor '{actor}' may not {need} in company '{company}': it needs the role {wanted} "
            f"(an admin grants it with `jetjobs actor grant {company} {actor} ROLE`)",
        )


async def audit(db: Any, action: str, company: str | None, detail: Mapping[str, Any]) -> None:
    """Record that the calling actor did `action`."""
    await TenantQueries(db).write_audit(current_actor.get(), action, company, dict(detail))


CompanyOf = Callable[[Any, BaseModel], Awaitable[str | None]]


async def _template_company(db: Any, template_id: int) -> str | None:
    return await TenantQueries(db).template_company(template_id)


async def _company_of(db: Any, request: BaseModel) -> str | None:
    """The company a request of the core API is about, when it names one."""
    match request:
        case TemplateSpec() | api.CompanyFilter() | api.JobQuery():
            return request.company
        case api.TemplateUpdate() | api.TemplateRef():
            return await _template_company(db, request.id)
        case api.JobRef():
            brief = await TenantQueries(db).job_brief(request.id)
            return None if brief is None else brief[0]
        case Company():
            return request.code
    return None


CORE_NEEDS: dict[str, Need] = {
    "company.list": "read",
    "app.list": "read",
    "template.create": "change",
    "template.update": "change",
    "template.get": "read",
    "template.list": "read",
    "job.get": "read",
    "job.list": "read",
}
CORE_CHANGES = ("company.create", "app.import", "template.create", "template.update")
"""`template.run` checks and audits for itself: it is on the path of every run-now,
so its lookups go out together and its audit entry shares the job's transaction."""


def summary(request: BaseModel) -> dict[str, Any]:
    """What the audit log keeps of a request: small, and never a document or a value."""
    data = request.model_dump(mode="json", exclude={"document", "env", "values"})
    return {k: v for k, v in data.items() if v is not None}


def guarded(pool: Any, op: str, handler: Handler) -> Handler:
    """`handler` with the actor checked for its company and the change audited."""
    need = CORE_NEEDS.get(op)
    changes = op in CORE_CHANGES

    async def handle(request: BaseModel) -> BaseModel:
        company = await _company_of(pool, request) if need or changes else None
        if need is not None and company is not None:
            await require(pool, company, need)
        reply = await handler(request)
        if changes:
            await audit(pool, op, company, summary(request))
        return reply

    return handle


def guard_all(pool: Any, handlers: Mapping[str, Handler]) -> dict[str, Handler]:
    """Every core handler guarded; the tenant handlers check for themselves."""
    return {
        op: guarded(pool, op, h) if op in CORE_NEEDS or op in CORE_CHANGES else h
        for op, h in handlers.items()
    }
