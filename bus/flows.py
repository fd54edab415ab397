"""The flow orchestrator's durable consumer of scheduled flow starts, and what it
publishes: flow lifecycle events and flow starts."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from contracts.flows import FLOWS_STREAM, FlowEvent, FlowStart, flow_events_subject, flow_start_subject

from .infra import Layout, ensure_consumer
from .publish import Publisher, encode

FLOW_STARTS_CONSUMER = "store_flow_starts"
"""The orchestrator's durable consumer of scheduled flow starts."""


async def ensure_flow_starts_consumer(js: JetStreamContext, layout: Layout) -> None:
    """Create the consumer of flow starts; it takes every start still stored, since a
    scheduler may fire a flow template before the first orchestrator runs."""
    config = layout.durable(
        FLOW_STARTS_CONSUMER,
        flow_start_subject("*"),
        "flows: start the flow runs of fired flow templates",
        deliver_policy=DeliverPolicy.ALL,
        max_ack_pending=1000,
    )
    await ensure_consumer(js, FLOWS_STREAM, config)


async def publish_flow_event(publisher: Publisher, event: FlowEvent, msg_id: str) -> None:
    """Publish one flow lifecycle event (dedup by `msg_id`)."""
    await publisher.publish(flow_events_subject(event.company, event.run_id), encode(event), msg_id)


def flow_start_address(start: FlowStart) -> tuple[str, str]:
    """The subject and the dedup id (from the run id) a flow start is published with."""
    return flow_start_subject(start.company), f"flow.{start.run_id}"


async def publish_flow_start(publisher: Publisher, start: FlowStart) -> bool:
    """Publish a flow start, dedup by its run id; whether JetStream already had it."""
    subject, msg_id = flow_start_address(start)
    ack = await publisher.publish(subject, encode(start), msg_id)
    return ack.duplicate is True
