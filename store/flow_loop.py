"""The orchestrator's consume loop: one job event at a time, acked after its step."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from bus import Ack, Bus, Invalid, Nak, PullConsumer, Term, decode, settle
from bus.flows import FLOWS_CONSUMER, ensure_flow_consumer
from contracts import subjects as s
from contracts.messages import JobEvent

from .db import UNAVAILABLE
from .flow_engine import FlowEngine

log = structlog.get_logger("jetjobs.flows")

BATCH = 200
"""Job events taken at once: a wide flow's many outcomes become one step."""


async def run_flows(engine: FlowEngine, bus: Bus, stopping: asyncio.Event) -> None:
    """Advance flow runs on job outcomes until `stopping` is set."""
    await ensure_flow_consumer(bus.js, bus.layout)
    await _resend(engine)
    consumer = PullConsumer(bus.js, s.EVENTS_STREAM, FLOWS_CONSUMER)
    try:
        while not stopping.is_set():
            await _batch(engine, await consumer.fetch(BATCH, timeout=1.0))
    finally:
        await consumer.close()


async def _batch(engine: FlowEngine, msgs: list[Any]) -> None:
    """One step for the whole batch; every message is settled the same way."""
    deliveries = []
    for msg in msgs:
        item = decode(JobEvent, msg)
        if isinstance(item, Invalid):
            await settle(msg, Term(item.reason))
        else:
            deliveries.append(item)
    if not deliveries:
        return
    if any(d.delivered > 1 for d in deliveries):
        await _resend(engine)
    action = await _handle(engine, [d.payload for d in deliveries])
    for delivery in deliveries:
        await settle(delivery.msg, action)


async def _handle(engine: FlowEngine, events: list[JobEvent]) -> Ack | Nak:
    try:
        await engine.on_events(events)
    except UNAVAILABLE as error:
        log.warning("flow.db_unavailable", events=len(events), error=repr(error))
        return Nak(1.0)
    except Exception:
        first = events[0]
        log.exception("flow.step_failed", job_id=first.job_id, company=first.company, attempt=first.attempt)
        return Nak(5.0)
    return Ack()


async def _resend(engine: FlowEngine) -> None:
    try:
        sent = await engine.resend()
    except Exception:
        log.exception("flow.resend_failed")
        return
    if sent:
        log.info("flow.resent", jobs=sent)
