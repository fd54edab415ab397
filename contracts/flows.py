"""Flows: a DAG of jobs with shared env, conditional edges and results passed downstream."""

from __future__ import annotations

import functools
import graphlib
import uuid
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from .base import RESULT_FILE_VAR as RESULT_FILE_VAR
from .base import AwareDatetime, Code, EnvVars, Frozen
from .enums import Status
from .flowcheck import Problem, graph_problems, result_name_problems, result_prefix
from .messages import JobEvent
from .models import BoundedTimeouts

NodeName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")]
"""A node name: letters, digits, `_` and `-`, starting with a letter."""

LAUNCHER = "flow:"
"""What a flow's jobs carry in `launched_by`, before the flow's name: reserved for them."""

GRAPH_ERROR = "flow_graph"
"""The validation error type of a problem between nodes (its message names the node)."""

_NAMESPACE = uuid.UUID("0b8f5d0e-2f3c-4a57-9c41-5d1e6f7a8b90")


class FlowError(ValueError):
    """A flow definition that cannot run: every problem found, each naming its node."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__(listing(problems))
        self.problems = list(problems)


def listing(problems: Sequence[str]) -> str:
    """One problem as it is; several counted, then one per line."""
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problems:\n" + "\n".join(f"  {p}" for p in problems)


class Edge(Frozen):
    """A prerequisite: `node` must end as `on` says, and `when` must hold on results."""

    node: NodeName
    on: Literal["success", "failure", "always"] = "success"
    when: str | None = Field(default=None, description="a condition on upstream results, see docs")

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: Any) -> Any:
        """YAML 1.1 reads a bare `on:` key as the boolean true; take it back."""
        if isinstance(data, str):
            return {"node": data}
        if isinstance(data, dict) and True in data:
            data = {("on" if k is True else k): v for k, v in data.items()}
        return data


class FlowNode(Frozen):
    """One step: an application (id or uuid) or a template (id), with its own overrides."""

    name: NodeName
    app: str | None = None
    template: int | None = None
    env: EnvVars = {}
    timeouts: BoundedTimeouts | None = None
    retries: int | None = Field(default=None, ge=0, le=100)
    depends: list[Edge] = []

    @field_validator("app", mode="before")
    @classmethod
    def _app_id(cls, value: Any) -> Any:
        """YAML reads `app: 3` as a number: an application id all the same."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _one_target(self) -> FlowNode:
        if (self.app is None) == (self.template is None):
            raise ValueError(f"node '{self.name}': give exactly one of `app` or `template`")
        return self


class FlowSpec(Frozen):
    """A flow definition, as written in YAML or JSON."""

    name: str = Field(min_length=1, max_length=200)
    company: Code
    env_vars: EnvVars = {}
    pool: Code = "default"
    nodes: list[FlowNode] = Field(min_length=1)

    @field_validator("nodes", mode="wrap")
    @classmethod
    def _well_formed(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> list[FlowNode]:
        """Every problem at once: the graph's, and the nodes' own (the nodes valid
        alone are still checked against each other)."""
        try:
            nodes: list[FlowNode] = handler(value)
        except ValidationError as found:
            if not isinstance(value, list):
                raise
            valid, others = _nodes_alone(value, found)
            raise _problems_error(value, graph_problems(valid, others), found) from None
        problems = graph_problems(nodes)
        if problems:
            raise _problems_error(value, problems, None)
        return nodes

    @functools.cached_property
    def by_name(self) -> dict[str, FlowNode]:
        """Nodes by name (built once: a step looks nodes up many times)."""
        return {n.name: n for n in self.nodes}

    @functools.cached_property
    def dependants(self) -> dict[str, list[tuple[str, int]]]:
        """The edges leaving each node: (dependant, index of the edge among its depends)."""
        found: dict[str, list[tuple[str, int]]] = {n.name: [] for n in self.nodes}
        for node in self.nodes:
            for index, edge in enumerate(node.depends):
                found[edge.node].append((node.name, index))
        return found

    @functools.cached_property
    def conditional(self) -> frozenset[str]:
        """The nodes with a condition on an edge: one may read any upstream node's
        results, so all their edges are looked at again whenever one prerequisite ends."""
        return frozenset(n.name for n in self.nodes if any(e.when is not None for e in n.depends))

    @functools.cached_property
    def position(self) -> dict[str, int]:
        """Each node's place in the definition: steps list nodes in this order."""
        return {n.name: i for i, n in enumerate(self.nodes)}

    def node(self, name: str) -> FlowNode:
        return self.by_name[name]


def check_graph(nodes: list[FlowNode]) -> list[str]:
    """The nodes in an order where every node follows its prerequisites; FlowError
    with every problem of names, references, cycles and conditions. `graphlib`
    sorts without recursion, so a long chain listed from its end is no deeper to
    check than a short one."""
    problems = graph_problems(nodes)
    if problems:
        raise FlowError([p.message for p in problems])
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for node in nodes:
        sorter.add(node.name, *(edge.node for edge in node.depends))
    return list(sorter.static_order())


def _problems_error(value: Any, problems: list[Problem], found: ValidationError | None) -> ValidationError:
    """The nodes' own errors, if any, and the graph's problems, each at its node."""
    names = [_name_of(item) for item in value]
    details: list[InitErrorDetails] = []
    for error in found.errors() if found else []:
        detail = InitErrorDetails(type=error["type"], loc=error["loc"], input=error["input"])
        if "ctx" in error:
            detail["ctx"] = error["ctx"]
        details.append(detail)
    for problem in problems:
        at = names.index(problem.node)
        kind = PydanticCustomError(GRAPH_ERROR, "{problem}", {"problem": problem.message})
        details.append(InitErrorDetails(type=kind, loc=(at,), input=value[at]))
    return ValidationError.from_exception_data("FlowSpec.nodes", details)


def _nodes_alone(value: Any, found: ValidationError) -> tuple[list[FlowNode], list[str]]:
    """The nodes of a list that failed which are valid on their own, and the names
    of the others (as far as they have one)."""
    failed = {error["loc"][0] for error in found.errors() if error["loc"]}
    valid, others = [], []
    for at, item in enumerate(value):
        if at not in failed:
            valid.append(FlowNode.model_validate(item))
        elif (name := _name_of(item)) is not None:
            others.append(name)
    return valid, others


def _name_of(item: Any) -> str | None:
    name = item.get("name") if isinstance(item, dict) else getattr(item, "name", None)
    return name if isinstance(name, str) else None


class NodeStatus(StrEnum):
    """Where one node of a flow run stands."""

    WAITING = "waiting_for_prerequisites"
    DISPATCHED = "dispatched"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


DONE = frozenset({NodeStatus.SUCCEEDED, NodeStatus.FAILED, NodeStatus.SKIPPED})


def node_outcome(event: JobEvent) -> NodeStatus | None:
    """How a job event ends the flow node its job runs: `processed` succeeds it, a
    final `error` fails it; any other event leaves it running."""
    if event.status is Status.PROCESSED:
        return NodeStatus.SUCCEEDED
    if event.status is Status.ERROR and event.final:
        return NodeStatus.FAILED
    return None


class FlowStatus(StrEnum):
    """Where a flow run stands."""

    STARTED = "started"
    FINISHED = "finished"
    ERROR = "error"
    CANCELLED = "cancelled"


class NodeView(Frozen):
    """One node of a flow run as the store records it."""

    name: str
    status: NodeStatus
    round: int = 1
    job_id: str | None = None
    job_status: str | None = None
    results: dict[str, str] = {}
    reason: str | None = None


class FlowRunHead(Frozen):
    """What a flow run is and where it stands, as both its views give it."""

    id: str
    name: str
    company: Code
    status: FlowStatus
    reason: str | None = None
    created_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None


class FlowRun(FlowRunHead):
    """A flow run with its nodes; `result` gathers every node's results."""

    nodes: list[NodeView] = []
    spec: FlowSpec | None = None
    existing: bool | None = Field(
        default=None,
        description="in a `flow.run` reply, true when its `key` named a run started before: this is that run",
    )

    @property
    def result(self) -> dict[str, dict[str, str]]:
        """Every node's results, for the flow's end event."""
        return {n.name: dict(n.results) for n in self.nodes if n.results}

    @functools.cached_property
    def results(self) -> dict[str, dict[str, str]]:
        """Results by node (empty ones included), for conditions and downstream env."""
        return {n.name: n.results for n in self.nodes}

    @functools.cached_property
    def _views(self) -> dict[str, NodeView]:
        return {n.name: n for n in self.nodes}

    def node(self, name: str) -> NodeView:
        return self._views[name]


class FlowEvent(Frozen):
    """A step of a flow run, on `jetjobs.events.<company>.flow.<run>`."""

    run_id: str
    company: Code
    name: str
    status: FlowStatus
    at: AwareDatetime
    node: str | None = None
    node_status: NodeStatus | None = None
    job_id: str | None = None
    reason: str | None = None
    result: dict[str, dict[str, str]] = {}


FLOWS_STREAM = "JETJOBS_FLOWS"
"""Flow runs to start: what a scheduler sends when a flow template fires."""
FLOWS_ALL = "jetjobs.flows.>"


def flow_start_subject(company: str) -> str:
    """Where a scheduled flow run's start is published."""
    return f"jetjobs.flows.start.{company}"


class FlowStart(Frozen):
    """Start the saved flow `flow` of `company` as run `run_id` (a fired slot of a
    flow template); the run id is the slot's id, so a slot starts one run only."""

    run_id: str = Field(min_length=1, max_length=64)
    company: Code
    flow: str = Field(min_length=1, max_length=200)
    template_id: int
    slot: AwareDatetime
    scheduled_at: AwareDatetime
    launched_by: str = "scheduler"


def flow_job_id(run_id: str, node: str, round_: int) -> str:
    """The job id of one node of one run: a restart or second orchestrator reuses it,
    and a retried node (next round) gets a new one."""
    return str(uuid.uuid5(_NAMESPACE, f"flow:{run_id}:{node}:{round_}"))


def new_run_id() -> str:
    return str(uuid.uuid4())


def keyed_run_id(company: str, flow: str, key: str) -> str:
    """The run id of a `flow.run` that names an idempotency key: the same key on the
    same flow always gives the same run, so a request sent again starts nothing new."""
    return str(uuid.uuid5(_NAMESPACE, f"flowrun:{company}:{flow}:{key}"))


def flow_events_subject(company: str, run_id: str) -> str:
    """Where a flow run's lifecycle events go."""
    return f"jetjobs.events.{company}.flow.{run_id}"


def result_var(node: str, key: str) -> str:
    """`JETJOBS_RESULT_<NODE>_<KEY>`: upper case, anything but letters, digits and `_` as `_`."""
    return f"JETJOBS_RESULT_{result_prefix(node)}_{result_prefix(key)}"


def check_result_names(nodes: list[FlowNode]) -> None:
    """FlowError naming every pair of nodes that would pass their results under the
    same variables. Checked where a definition is validated, saved or run from its
    file, not when a stored one is read, so runs of a flow saved before keep working."""
    problems = result_name_problems(node.name for node in nodes)
    if problems:
        raise FlowError([p.message for p in problems])


class FlowRunRequest(Frozen):
    """Run a flow: a full definition, or the saved one of `company` and `name`."""

    spec: FlowSpec | None = None
    company: Code | None = None
    name: str | None = None
    launched_by: str = "api"
    key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description=(
            "idempotency key: a request with the key of an earlier one on the same flow gets that "
            "run back (`existing`) instead of starting another, for as long as the run is kept"
        ),
    )

    @model_validator(mode="after")
    def _one_source(self) -> FlowRunRequest:
        if self.spec is None and (self.company is None or self.name is None):
            raise ValueError("give a flow definition, or the company and name of a saved flow")
        return self

    @property
    def target(self) -> tuple[str, str]:
        """The company and name of the flow to run, whichever way it is given."""
        if self.spec is not None:
            return self.spec.company, self.spec.name
        assert self.company is not None and self.name is not None
        return self.company, self.name


class FlowRef(Frozen):
    id: str = Field(min_length=1, max_length=64)


class FlowQuery(Frozen):
    company: Code | None = None
    limit: int = Field(default=50, ge=1, le=1000)


REASON_LISTED = 200
"""Characters of a run's reason a list keeps (`flow.get` has it whole)."""


class FlowRunSummary(FlowRunHead):
    """A flow run as `flow.list` gives it: without its definition, nodes and results,
    which could take a megabyte a run (`flow.get` has them); how many nodes stand
    at each status instead."""

    node_counts: dict[NodeStatus, int] = {}


class FlowRunList(Frozen):
    runs: list[FlowRunSummary]


class FlowChecked(Frozen):
    """A definition that passed every check, with its nodes in dependency order."""

    name: str
    company: Code
    order: list[str]


class FlowCancelled(Frozen):
    run: FlowRun
    cancelled_jobs: list[str] = []
