"""API handlers of flows: validate, run, show, list, cancel, retry."""

from __future__ import annotations

from typing import Any

from bus import Bus
from contracts.api import ApiFailure
from contracts.flowcheck import result_name_problems
from contracts.flows import (
    FlowCancelled,
    FlowChecked,
    FlowQuery,
    FlowRef,
    FlowRun,
    FlowRunList,
    FlowRunRequest,
    FlowSpec,
    check_graph,
    keyed_run_id,
)

from . import resolve
from .actors import audit, reader
from .api import Handler, _typed
from .credentials import Keyring
from .flow_engine import FlowEngine
from .flow_jobs import node_secrets, refusal, target_problems
from .flow_queries import FlowQueries
from .masking import shown_flow
from .queries import Queries
from .tenant_queries import TenantQueries


class FlowApi:
    """Flow operations of the store's API."""

    def __init__(self, pool: Any, bus: Bus, keyring: Keyring | None = None) -> None:
        self._pool = pool
        self._engine = FlowEngine(pool, bus, keyring)

    @property
    def engine(self) -> FlowEngine:
        return self._engine

    def handlers(self) -> dict[str, Handler]:
        return {
            "flow.validate": _typed("flow.validate", FlowSpec, self.validate),
            "flow.save": _typed("flow.save", FlowSpec, self.save),
            "flow.run": _typed("flow.run", FlowRunRequest, self.run),
            "flow.get": _typed("flow.get", FlowRef, self.get),
            "flow.list": _typed("flow.list", FlowQuery, self.list),
            "flow.cancel": _typed("flow.cancel", FlowRef, self.cancel),
            "flow.retry": _typed("flow.retry", FlowRef, self.retry),
        }

    async def validate(self, spec: FlowSpec) -> FlowChecked:
        """Every problem at once: nodes whose results would collide, and missing or
        foreign applications and templates."""
        queries = Queries(self._pool)
        await resolve.company(queries, spec.company)
        problems = _name_clashes(spec) + await target_problems(queries, spec)
        if problems:
            raise refusal(problems)
        return FlowChecked(name=spec.name, company=spec.company, order=check_graph(spec.nodes))

    async def save(self, spec: FlowSpec) -> FlowChecked:
        """Validate and keep a definition, for flow templates and `flow run COMPANY/NAME`."""
        checked = await self.validate(spec)
        await FlowQueries(self._pool).save_definition(spec)
        await audit(self._pool, "flow.save", spec.company, {"flow": spec.name})
        return checked

    async def run(self, request: FlowRunRequest) -> FlowRun:
        company, name = request.target
        run_id = None if request.key is None else keyed_run_id(company, name, request.key)
        if run_id is not None and await TenantQueries(self._pool).flow_run_company(run_id) == company:
            return (await self.get(FlowRef(id=run_id))).model_copy(update={"existing": True})
        spec = request.spec
        if spec is not None:
            if clashes := _name_clashes(spec):
                raise refusal(clashes + await target_problems(Queries(self._pool), spec))
        else:
            assert request.company is not None and request.name is not None
            spec = await FlowQueries(self._pool).definition(request.company, request.name)
            if spec is None:
                raise ApiFailure(
                    404,
                    f"no flow '{request.name}' in company '{request.company}': "
                    "save it with `jetjobs flow save FILE` or run it once from its file",
                )
        await resolve.company(Queries(self._pool), spec.company)
        run = await self._engine.start_run(spec, request.launched_by, run_id=run_id)
        if not run.existing:
            await audit(self._pool, "flow.run", spec.company, {"flow": spec.name, "run": run.id})
        return await self._shown(run)

    async def get(self, request: FlowRef) -> FlowRun:
        return await self._shown(await self._engine.get(request.id))

    async def _shown(self, run: FlowRun) -> FlowRun:
        """The run without the secret values of its definition (see `masking`)."""
        if run.spec is None:
            return run
        return shown_flow(run, await node_secrets(Queries(self._pool), run.spec))

    async def _changing(self, op: str, run_id: str) -> None:
        """Audit a change of a run (the guard checked the actor): 404 for an unknown run."""
        run = await self._engine.get(run_id)
        await audit(self._pool, op, run.company, {"run": run_id})

    async def list(self, request: FlowQuery) -> FlowRunList:
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            runs = await FlowQueries(conn).runs(request.company, request.limit, reader())
        return FlowRunList(runs=runs)

    async def cancel(self, request: FlowRef) -> FlowCancelled:
        """The cancelled run, and the running jobs asked to stop by now (the store
        stops the others as soon as it can, see `FlowEngine.cancel`)."""
        await self._changing("flow.cancel", request.id)
        run, killed = await self._engine.cancel(request.id)
        return FlowCancelled(run=await self._shown(run), cancelled_jobs=killed)

    async def retry(self, request: FlowRef) -> FlowRun:
        await self._changing("flow.retry", request.id)
        return await self._shown(await self._engine.retry(request.id))


def _name_clashes(spec: FlowSpec) -> list[ApiFailure]:
    return [ApiFailure(400, p.message) for p in result_name_problems(n.name for n in spec.nodes)]
