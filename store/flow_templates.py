"""What a run template runs: an application (its id) or a saved flow of its company."""

from __future__ import annotations

from contracts.api import ApiFailure
from contracts.models import TemplateSpec

from . import resolve
from .db import Db
from .flow_queries import FlowQueries
from .queries import Queries


async def template_app_id(conn: Db, spec: TemplateSpec) -> int | None:
    """The application id of an app template; None for a flow template whose flow
    is saved; ApiFailure saying how to save it when it is not."""
    if spec.app is not None:
        app = await resolve.application(Queries(conn), spec.app)
        assert app.id is not None
        return app.id
    assert spec.flow is not None
    if await FlowQueries(conn).definition(spec.company, spec.flow) is None:
        raise ApiFailure(
            404,
            f"no flow '{spec.flow}' in company '{spec.company}': save it first with "
            "`jetjobs flow save FILE` (or run it once with `jetjobs flow run FILE`)",
        )
    return None


def run_now(template_id: int, flow: str | None, company: str) -> str:
    """The command that runs a template at once: `flow run` of its flow, else `job run`."""
    return f"jetjobs flow run {company}/{flow}" if flow is not None else f"jetjobs job run {template_id}"


def not_for_flows(template_id: int, flow: str | None, company: str, what: str) -> None:
    """Refuse an operation that runs a job of the template when it runs a flow."""
    if flow is not None:
        raise ApiFailure(
            409,
            f"template {template_id} runs flow '{flow}', not a job: {what} "
            f"(run the flow with `{run_now(template_id, flow, company)}`)",
        )
