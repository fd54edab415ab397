"""Who may do what: each API request is made as an actor (the `Jetjobs-Actor`
header, or the actor of its `Jetjobs-Token`), checked against the company's admins,
readers and executors, and every change is written to the audit log.

A company that lists no actors is open to every caller, which keeps a single
operator's setup simple. Granting the first role (an admin's) closes it: that grant
says so and names the recent actors it locks out, and is refused when it would lock
out its own caller unless asked to close the company anyway (`close`). Revoking the
last role opens it again; a revoke that would leave actors but no admin is refused.
A closed company takes the `execute` need (its credential values, artifact uploads)
only from an actor proven by a token: a store that does not require tokens believes
the actor header as sent, and any connection that may call the API could name the
company's executor.

`RULES` is the one place that says, for every operation of `contracts.api.OPERATIONS`,
what it needs in which company (or why it is open to every actor) and who writes
the audit entry of a change; `guard_all` refuses to serve an operation without a
rule, so none can be added unguarded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import structlog
from pydantic import BaseModel

from bus.api import current_actor
from contracts.api import ApiFailure
from contracts.tenants import ActorEntry, ActorGrant, ActorRevoke

from . import resolve
from .db import deadline
from .tenant_queries import TenantQueries
from .visibility import Reader

log = structlog.get_logger("jetjobs.store")

Need = Literal["read", "change", "execute"]
Handler = Callable[[BaseModel], Awaitable[BaseModel]]

ALLOWED: dict[Need, frozenset[str]] = {
    "read": frozenset({"admin", "reader"}),
    "change": frozenset({"admin"}),
    "execute": frozenset({"executor"}),
}

token_proven: ContextVar[bool] = ContextVar("jetjobs_token_proven", default=False)
"""Whether the request being answered presented a valid token (`store.tokens` sets
it): its actor is proven, not merely named."""


async def require(db: Any, company: str, need: Need, known: bool = False) -> str:
    """The calling actor, if it may `need` in `company`; otherwise a 403 saying who may
    (and, when the company must be `known`, a 404 for one that does not exist)."""
    actor = current_actor.get()
    standing = await TenantQueries(db).standing(company, actor)
    if known and not standing.known:
        raise resolve.unknown_company(company)
    permit(actor, company, need, standing.roles, standing.closed)
    return actor


def permit(actor: str, company: str, need: Need, roles: set[str], closed: bool) -> None:
    """A 403 saying who may, unless `roles` (or a company open to everyone) allow `need`."""
    if closed and not roles & ALLOWED[need]:
        allowed = sorted(ALLOWED[need])
        wanted = " or ".join(allowed)
        role = allowed[0] if len(allowed) == 1 else "ROLE"
        log.warning("api.refused", actor=actor, company=company, need=need)
        raise ApiFailure(
            403,
            f"actor '{actor}' may not {need} in company '{company}': it needs the role {wanted} "
            f"(an admin grants it with `jetjobs actor grant {company} {actor} {role}`)",
        )
    if closed and need == "execute" and not token_proven.get():
        log.warning("api.unproven_executor", actor=actor, company=company)
        raise ApiFailure(
            401,
            f"actor '{actor}' named itself an executor of company '{company}' without an API token: "
            "a company that lists its actors serves credentials and takes artifacts only from an "
            f"executor that proves who it is. Issue it a token (`jetjobs actor token create {actor}`) "
            "and give it to the executor as JETJOBS_API_TOKEN",
        )


RECENT = timedelta(days=30)
"""How far back a closing grant reads the company's audit log for the actors it locks out."""
RECENT_ENTRIES = 10_000
"""The most audit entries it reads: a grant never scans a busy company's whole month."""


def check_closing(grant: ActorGrant, caller: str) -> None:
    """A 409 unless `grant` may close its company, open to every actor until now: the
    company gets an admin first, and the caller is not locked out unless it said `close`."""
    company = grant.company
    if grant.role != "admin":
        raise ApiFailure(
            409,
            f"company '{company}' has no admin yet: grant one first "
            f"(`jetjobs actor grant {company} ACTOR admin`), or nobody could manage it",
        )
    if grant.actor != caller and not grant.close:
        raise ApiFailure(
            409,
            f"granting '{grant.actor}' admin closes company '{company}', open to every actor until now: "
            f"from then on only the actors it lists may act in it, and you ('{caller}') would be locked "
            f"out. Grant yourself admin first (`jetjobs actor grant {company} {caller} admin`), or pass "
            '--close (API: "close": true) to close it anyway',
        )


def closing_warnings(company: str, actors: Sequence[ActorEntry], locked_out: Sequence[str]) -> list[str]:
    """What a grant that closed an open company tells its caller: who may act from now
    on, whom the audit log shows acting lately that may not, and what executors need."""
    warnings = [
        f"company '{company}' was open to every actor and is now closed: from now on only the actors "
        f"it lists may act in it (`jetjobs actor list {company}`), and its executors only with an API "
        "token (`jetjobs actor token create ACTOR`, given to the executor as JETJOBS_API_TOKEN)"
    ]
    if locked_out:
        named = ", ".join(f"'{actor}'" for actor in locked_out)
        warnings.append(
            f"now locked out of '{company}' (they acted in it in the last {RECENT.days} days): {named}; "
            f"an admin gives each its role with `jetjobs actor grant {company} ACTOR ROLE`"
        )
    if not any(entry.role == "executor" for entry in actors):
        warnings.append(
            "executors act as their JETJOBS_EXECUTOR_ACTOR (default 'executor'), which now needs the "
            f"role executor in '{company}' and its token: until `jetjobs actor grant {company} executor "
            f"executor`, the jobs of '{company}' that use credentials end error (invalid) and their "
            "artifacts are not stored"
        )
    return warnings


def role_not_held(revoke: ActorRevoke, roles: set[str]) -> ApiFailure:
    """The 404 of a revoke of a role the actor does not hold."""
    holds = f"it holds {', '.join(sorted(roles))}" if roles else "it holds no role there"
    return ApiFailure(
        404,
        f"actor '{revoke.actor}' does not hold the role {revoke.role} in company '{revoke.company}' "
        f"({holds}): `jetjobs actor list {revoke.company}` shows who holds what",
    )


def check_admin_left(revoke: ActorRevoke, actors: Sequence[ActorEntry]) -> None:
    """A 409 if, after `revoke`, the company lists actors but no admin: nobody could manage it."""
    if not actors or any(entry.role == "admin" for entry in actors):
        return
    listed = ", ".join(sorted({f"'{entry.actor}'" for entry in actors}))
    raise ApiFailure(
        409,
        f"revoking the role admin of '{revoke.actor}' would leave company '{revoke.company}' without an "
        f"admin while it lists {listed}, so nobody could manage it any more: grant another actor admin "
        f"first (`jetjobs actor grant {revoke.company} ACTOR admin`); to open the company to every "
        "actor instead, revoke the other roles first",
    )


def opened_warnings(company: str, actors: Sequence[ActorEntry]) -> list[str]:
    """What a revoke that took a company's last role tells its caller."""
    if actors:
        return []
    return [
        f"company '{company}' lists no actors any more: it is open to every actor again "
        f"(granting an admin closes it: `jetjobs actor grant {company} ACTOR admin`)"
    ]


def reader() -> Reader:
    """The calling actor, as the reader of a list that spans companies."""
    return Reader(current_actor.get(), sorted(ALLOWED["read"]))


async def audit(db: Any, action: str, company: str | None, detail: Mapping[str, Any]) -> None:
    """Record that the calling actor did `action`."""
    await TenantQueries(db).write_audit(current_actor.get(), action, company, dict(detail))


VALUES = {"document", "env", "set_env", "values"}
"""Request fields that hold documents or values, which the audit log never keeps:
of an environment it keeps only which variables changed."""


def summary(request: BaseModel) -> dict[str, Any]:
    """What the audit log keeps of a request: small, and never a document or a value."""
    data = request.model_dump(mode="json", exclude_none=True)
    kept = {k: v for k, v in data.items() if k not in VALUES}
    changes = kept.get("changes")
    if isinstance(changes, dict) and "env" in changes:
        kept["changes"] = {**{k: v for k, v in changes.items() if k != "env"}, "env": sorted(changes["env"])}
    if data.get("set_env"):
        kept["set_env"] = sorted(data["set_env"])
    return kept


async def _job_company(queries: TenantQueries, job_id: str) -> str | None:
    brief = await queries.job_brief(job_id)
    return None if brief is None else brief[0]


OWNERS: dict[str, Callable[[TenantQueries, Any], Awaitable[str | None]]] = {
    "template": TenantQueries.template_company,
    "job": _job_company,
    "letter": TenantQueries.dead_letter_company,
    "run": TenantQueries.flow_run_company,
}
"""How to find the company of what an id names, by what it names."""


@dataclass(frozen=True)
class Of:
    """Where a request's company is: the field at `path` (dotted, into models and
    dicts) names it, or, with an `owner` of `OWNERS`, holds the id of what it belongs
    to. An empty field or an unknown id finds none, and the handler answers."""

    path: str
    owner: str | None = None

    async def company(self, db: Any, request: BaseModel) -> str | None:
        value: Any = request
        for part in self.path.split("."):
            value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
        if value is None or self.owner is None:
            return value if isinstance(value, str) else None
        return await OWNERS[self.owner](TenantQueries(db), value)


Auditor = Literal["guard", "handler"]


@dataclass(frozen=True)
class Rule:
    """What an operation needs in each company `of` finds, or None when it is open to
    every actor (`why` says why); who writes the audit entry of a change; whether the
    handler checks `need` itself (`why` says why); and whether `of` is a list's
    company filter, which must name a company, and without which the list shows only
    rows of companies the actor may read (the handler passes `reader()` to its query)."""

    need: Need | None
    of: tuple[Of, ...] = ()
    audit: Auditor | None = None
    checker: Auditor = "guard"
    listing: bool = False
    why: str = ""


def _reads(*of: Of) -> Rule:
    return Rule("read", of)


def _changes(*of: Of, audit: Auditor = "guard") -> Rule:
    return Rule("change", of, audit=audit)


def _open(why: str, *of: Of, audit: Auditor | None = None) -> Rule:
    return Rule(None, of, audit=audit, why=why)


NAMED = Of("company")
LISTS = Rule("read", (NAMED,), listing=True)
TEMPLATE = Of("id", "template")
JOB = Of("id", "job")
RUN = Of("id", "run")
LETTER = Of("id", "letter")
SHARED_APPS = (
    "applications are one catalog that every company's templates share, and no company owns one; "
    "a re-import changes what each company using it runs, so its handler requires the change role "
    "in each of them"
)
BY_TOKEN = "tokens belong to actors, not to companies: the handler requires an admin token"

RULES: dict[str, Rule] = {
    "company.create": _open(
        "anyone may create a company: it starts open to all, and its first grant names its admin",
        Of("code"),
        audit="guard",
    ),
    "company.list": LISTS,
    "app.import": _open(SHARED_APPS, audit="guard"),
    "app.list": _reads(NAMED),
    "app.export": _open(SHARED_APPS),
    "template.create": _changes(NAMED),
    "template.update": _changes(TEMPLATE, Of("changes.company")),
    "template.get": _reads(TEMPLATE),
    "template.list": LISTS,
    "template.run": Rule(
        "change",
        (TEMPLATE,),
        audit="handler",
        checker="handler",
        why="on every run-now's path: one statement finds the template and the actor's roles, "
        "and the audit entry shares the job's transaction",
    ),
    "job.get": _reads(JOB),
    "job.list": LISTS,
    "job.cancel": _changes(JOB),
    "dlq.list": LISTS,
    "dlq.get": _reads(LETTER),
    "dlq.replay": _changes(LETTER),
    "runner.list": _open(
        "executors serve pools, not companies; a heartbeat names only job ids, and a job needs read"
    ),
    "credential.set": _changes(NAMED, audit="handler"),
    "credential.list": _reads(NAMED),
    "credential.assign": _changes(Of("template_id", "template"), audit="handler"),
    "credential.unassign": _changes(Of("template_id", "template"), audit="handler"),
    "credential.delete": _changes(NAMED, audit="handler"),
    "secrets.fetch": Rule(
        "execute",
        (NAMED,),
        audit="handler",
        checker="handler",
        why="on the executor's path of every job with credentials: the handler checks the template "
        "(if the job has one), the job and the company together",
    ),
    "template.env": _reads(TEMPLATE),
    "artifact.put": Rule(
        "execute",
        (NAMED,),
        checker="handler",
        why="on the executor's path of every artifact: the handler checks it with the job's company",
    ),
    "artifact.list": _reads(JOB),
    "artifact.get": _reads(Of("job_id", "job")),
    "actor.grant": _changes(NAMED, audit="handler"),
    "actor.revoke": _changes(NAMED, audit="handler"),
    "actor.list": _reads(NAMED),
    "audit.list": LISTS,
    "token.create": _open(BY_TOKEN, audit="handler"),
    "token.revoke": _open(BY_TOKEN, audit="handler"),
    "token.list": _open(BY_TOKEN),
    "template.pause": _changes(TEMPLATE),
    "template.resume": _changes(TEMPLATE),
    "template.delete": _changes(TEMPLATE, audit="handler"),
    "company.pause": _changes(Of("code")),
    "company.resume": _changes(Of("code")),
    "template.backfill": _changes(TEMPLATE),
    "template.explain": _reads(TEMPLATE),
    "flow.validate": _reads(NAMED),
    "flow.save": _changes(NAMED, audit="handler"),
    "flow.run": _changes(Of("spec.company"), NAMED, audit="handler"),
    "flow.get": _reads(RUN),
    "flow.list": LISTS,
    "flow.cancel": _changes(RUN, audit="handler"),
    "flow.retry": _changes(RUN, audit="handler"),
    "history.prune": _open(
        "history spans every company: the handler requires an admin token and audits what it removed",
        audit="handler",
    ),
}
"""Every operation's rule. `app.list` with no company lists the whole catalog."""


def guarded(pool: Any, op: str, rule: Rule, handler: Handler) -> Handler:
    """`handler` with the actor checked in each company of the request, and the change audited."""
    if rule.checker == "handler" or (rule.need is None and rule.audit != "guard"):
        return handler

    async def handle(request: BaseModel) -> BaseModel:
        companies = [c for where in rule.of if (c := await where.company(pool, request)) is not None]
        if rule.need is not None:
            for company in companies:
                await require(pool, company, rule.need, known=rule.listing)
        reply = await handler(request)
        if rule.audit == "guard":  # done: its entry is written even if the caller gave up
            token = deadline.set(None)
            try:
                await audit(pool, op, companies[0] if companies else None, summary(request))
            finally:
                deadline.reset(token)
        return reply

    return handle


def guard_all(pool: Any, handlers: Mapping[str, Handler]) -> dict[str, Handler]:
    """Every handler behind its rule; an operation without one is a bug, found at start."""
    missing = sorted(set(handlers) - set(RULES))
    if missing:
        raise LookupError(f"operations without a rule in store.actors.RULES: {', '.join(missing)}")
    return {op: guarded(pool, op, RULES[op], handler) for op, handler in handlers.items()}
