"""Flow templates: a fired slot of a flow template starts a flow run (a
`FlowStart` on the bus, taken by the store) instead of dispatching a job. The
run id is the slot's job id, so two schedulers or a restart start it once."""

from __future__ import annotations

from contracts.flows import FlowStart
from contracts.messages import JobMessage

from .policy import Due


def flow_start(due: Due, message: JobMessage, flow: str) -> FlowStart:
    """The start a flow template's slot sends; the slot's job message only lends
    its id and (jittered) scheduled time."""
    return FlowStart(
        run_id=message.job_id,
        company=due.template.company,
        flow=flow,
        template_id=due.template.id,
        slot=due.slot,
        scheduled_at=message.scheduled_at,
        launched_by=f"template:{due.template.id}",
    )
