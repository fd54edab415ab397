"""The firer's hook for flow templates: a fired slot of a flow template starts a
flow run (a `FlowStart` on the bus, taken by the store) instead of dispatching
a job. The run id is the slot's id, so two schedulers or a restart start it once."""

from __future__ import annotations

from collections.abc import Sequence

from bus import Publisher, PublishFailed
from bus.flows import publish_flow_start
from contracts.flows import FlowStart

from .firing import Failed, Firing, Outcome, Published, publish


def flow_start(firing: Firing) -> FlowStart:
    """The start a flow template's firing sends (its message only lends the slot's
    id and jittered time)."""
    template, message = firing.due.template, firing.message
    assert template.flow is not None
    return FlowStart(
        run_id=message.job_id,
        company=template.company,
        flow=template.flow,
        template_id=template.id,
        slot=firing.due.slot,
        scheduled_at=message.scheduled_at,
        launched_by=f"template:{template.id}",
    )


async def _start(publisher: Publisher, firing: Firing) -> Outcome:
    try:
        return Published(await publish_flow_start(publisher, flow_start(firing)))
    except PublishFailed as error:
        return Failed(str(error))
    except Exception as error:
        return Failed(f"{type(error).__name__}: {error}")


async def publish_firings(publisher: Publisher, firings: Sequence[Firing]) -> list[Outcome]:
    """Publish job firings as `firing.publish` does and start the flow runs of flow
    templates' firings; one outcome per firing, in order."""
    jobs = [f for f in firings if f.due.template.flow is None]
    if len(jobs) == len(firings):
        return await publish(publisher, firings)
    job_outcomes = iter(await publish(publisher, jobs))
    return [
        next(job_outcomes) if f.due.template.flow is None else await _start(publisher, f) for f in firings
    ]
