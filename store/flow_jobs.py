"""Turning a ready flow node into its job message."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.api import ApiFailure
from contracts.dispatch import application_env, expand_argv, job_message, merged_env
from contracts.flows import LAUNCHER, FlowNode, FlowSpec, listing
from contracts.messages import JobMessage
from contracts.models import Application, Timeouts, cron_for

from . import resolve
from .board import active_template, secret_fields
from .credentials import Keyring
from .db import Db
from .job_secrets import by_name, seal_for_app_job, seal_for_job
from .queries import Queries
from .template_secrets import secret_values, without
from .tenant_queries import TenantQueries


def flow_of(launched_by: str) -> str | None:
    """The flow that launched a job, from its `launched_by`; None for any other job."""
    return launched_by.removeprefix(LAUNCHER) if launched_by.startswith(LAUNCHER) else None


async def _app_message(
    conn: Db,
    app: Application,
    spec: FlowSpec,
    node: FlowNode,
    job_id: str,
    env: dict[str, str],
    now: datetime,
    keyring: Keyring | None,
) -> JobMessage:
    """The message of an application node. As for a template node, the values its env
    gives the application's secret fields are sealed for the job and travel by name; its
    defaults stay in the env, masked, as they do for a template (the application document
    holds them in clear, for anyone to export)."""
    secret: dict[str, str] = {}
    if keyring is not None:
        secret = secret_values(app, env)
        if secret:
            await seal_for_app_job(conn, keyring, job_id, spec.company, secret)
    merged = merged_env(without(application_env(app), secret), without(env, secret))
    limits = node.timeouts or Timeouts()
    return JobMessage(
        job_id=job_id,
        company=spec.company,
        pool=spec.pool,
        app_id=app.id,
        argv=expand_argv(app.executable, app.cmdparams, merged, keep=secret),
        env=merged,
        secrets=sorted(secret),
        scheduled_at=now,
        dispatched_at=now,
        timeout=limits.timeout,
        timeout_ack=limits.timeout_ack,
        timeout_result=limits.timeout_result,
        retries=node.retries or 0,
        launched_by=LAUNCHER + spec.name,
        exit_codes=app.exit_codes,
        masked=[name for name in secret_fields(app) if merged.get(name)] or None,
        artifacts=app.artifacts,
        image=app.ociimage,
    )


async def _template_message(
    conn: Db,
    spec: FlowSpec,
    node: FlowNode,
    job_id: str,
    env: dict[str, str],
    now: datetime,
    keyring: Keyring | None,
) -> JobMessage:
    """The message of a template node. The values its env gives secret fields of the
    template's application are sealed for the job in the step's transaction, committed
    before the message is sent, and travel by name; a store without a key leaves them
    in the message, masked (its env may hold upstream results, known only now)."""
    assert node.template is not None
    row = await resolve.template(Queries(conn), node.template)
    if row.template.company != spec.company or row.template.flow is not None:
        raise ApiFailure(
            400, f"node '{node.name}': template {node.template} is not an app template of '{spec.company}'"
        )
    extras = (await TenantQueries(conn).template_extras([node.template])).get(node.template)
    view = active_template(row, cron_for(row.template.interv, row.template.cron) or "", extras)
    secret = secret_values(row.app, env)
    if secret and keyring is not None:
        await seal_for_job(conn, keyring, job_id, view, secret)
        view, env = by_name(view, secret), without(env, secret)
    message = job_message(
        view,
        job_id=job_id,
        slot=now,
        now=now,
        launched_by=LAUNCHER + spec.name,
        env_overrides=env,
        timeouts=node.timeouts,
    )
    return message if node.retries is None else message.model_copy(update={"retries": node.retries})


async def node_message(
    conn: Db,
    spec: FlowSpec,
    node: FlowNode,
    job_id: str,
    env: dict[str, str],
    apps: dict[str, Application] | None = None,
    keyring: Keyring | None = None,
) -> JobMessage:
    """The job message of a node with the env it gets (flow env, node env, upstream
    results); `apps` caches applications across the nodes of one step. With the store's
    `keyring`, a node's values of secret fields travel by name."""
    now = datetime.now(UTC)
    if node.app is not None:
        cache = {} if apps is None else apps
        if node.app not in cache:
            cache[node.app] = await resolve.application(Queries(conn), node.app)
        return await _app_message(conn, cache[node.app], spec, node, job_id, env, now, keyring)
    return await _template_message(conn, spec, node, job_id, env, now, keyring)


async def target_problems(queries: Queries, spec: FlowSpec) -> list[ApiFailure]:
    """Every node whose application or template is missing or not its company's, each
    failure naming its node. A template of another company reads as unknown, as it
    does to that company's outsiders everywhere else."""
    problems = []
    for node in spec.nodes:
        try:
            if node.app is not None:
                await resolve.application(queries, node.app)
            elif node.template is not None:
                found = await queries.template(node.template)
                if found is None or found.template.company != spec.company:  # another's is not named
                    raise ApiFailure(
                        404,
                        f"no template {node.template} in company '{spec.company}': a flow runs its own "
                        f"company's templates (`jetjobs template list --company {spec.company}`)",
                    )
                target = (await resolve.template(queries, node.template)).template
                if target.flow is not None:
                    raise ApiFailure(400, f"template {node.template} runs flow '{target.flow}', not a job")
        except ApiFailure as error:
            problems.append(ApiFailure(error.code, f"node '{node.name}': {error.message}"))
    return problems


async def node_secrets(queries: Queries, spec: FlowSpec) -> dict[str, list[str]]:
    """The secret fields of each node's application (a template's, for a template node),
    by node name; none for a node whose target is gone. Each target is read once."""
    found: dict[tuple[str | None, int | None], list[str]] = {}
    secret: dict[str, list[str]] = {}
    for node in spec.nodes:
        target = (node.app, node.template)
        if target not in found:
            found[target] = await _secret_fields(queries, node)
        secret[node.name] = found[target]
    return secret


async def _secret_fields(queries: Queries, node: FlowNode) -> list[str]:
    if node.app is not None:
        try:
            return secret_fields(await resolve.application(queries, node.app))
        except ApiFailure:  # the app is gone: nothing is known to be secret
            return []
    row = None if node.template is None else await queries.template(node.template)
    return secret_fields(row.app) if row is not None and row.app is not None else []


def refusal(problems: list[ApiFailure]) -> ApiFailure:
    """One failure listing them all, one per line; its own code when it is alone."""
    code = problems[0].code if len(problems) == 1 else 400
    return ApiFailure(code, listing([p.message for p in problems]))


async def check_targets(queries: Queries, spec: FlowSpec) -> None:
    """Every node's application or template exists; ApiFailure naming each node if not."""
    problems = await target_problems(queries, spec)
    if problems:
        raise refusal(problems)
