"""The flow orchestrator's durable consumer of job events, and flow lifecycle events."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from contracts import subjects as s
from contracts.flows import FlowEvent, flow_events_subject

from .infra import Layout, ensure_consumer
from .publish import Publisher, encode

FLOWS_CONSUMER = "store_flows"
"""The orchestrator's durable consumer: job events only (`jetjobs.events.<company>.<job>`)."""


async def ensure_flow_consumer(js: JetStreamContext, layout: Layout) -> None:
    """Create the orchestrator's consumer; it starts at new events, since no flow
    run can exist before the first orchestrator does."""
    config = ConsumerConfig(
        durable_name=FLOWS_CONSUMER,
        description="flows: advance flow runs on job outcomes",
        filter_subject=s.events_filter(),
        deliver_policy=DeliverPolicy.NEW,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=layout.ack_wait,
        max_deliver=-1,
        max_ack_pending=20000,
        num_replicas=layout.replicas,
    )
    await ensure_consumer(js, s.EVENTS_STREAM, config)


async def publish_flow_event(publisher: Publisher, event: FlowEvent, msg_id: str) -> None:
    """Publish one flow lifecycle event (dedup by `msg_id`)."""
    await publisher.publish(flow_events_subject(event.company, event.run_id), encode(event), msg_id)
