"""The orchestrator's consume loops: job events (a batch per step, acked after
it), and the flow starts of fired flow templates."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import structlog

from bus import Ack, Bus, Invalid, Nak, PullConsumer, Term, decode, settle
from bus.batches import BatchPuller
from bus.flows import FLOW_STARTS_CONSUMER, FLOWS_CONSUMER, ensure_flow_consumer, ensure_flow_starts_consumer
from contracts import subjects as s
from contracts.api import ApiFailure
from contracts.flows import FLOWS_STREAM, FlowStart
from contracts.messages import JobEvent

from .db import UNAVAILABLE
from .flow_engine import FlowEngine

log = structlog.get_logger("jetjobs.flows")

BATCH = 200
"""Job events taken at once: a wide flow's many outcomes become one step."""


async def run_flows(engine: FlowEngine, bus: Bus, stopping: asyncio.Event) -> None:
    """Start scheduled flow runs and advance runs on job outcomes until `stopping` is set."""
    await asyncio.gather(_run_events(engine, bus, stopping), _run_starts(engine, bus, stopping))


async def _run_starts(engine: FlowEngine, bus: Bus, stopping: asyncio.Event) -> None:
    await ensure_flow_starts_consumer(bus.js, bus.layout)
    consumer = PullConsumer(bus.js, FLOWS_STREAM, FLOW_STARTS_CONSUMER)
    try:
        while not stopping.is_set():
            for msg in await consumer.fetch(20, timeout=1.0):
                item = decode(FlowStart, msg)
                action = (
                    Term(item.reason) if isinstance(item, Invalid) else await _start(engine, item.payload)
                )
                await settle(msg, action)
    finally:
        await consumer.close()


async def _start(engine: FlowEngine, start: FlowStart) -> Ack | Nak | Term:
    bound = log.bind(
        run_id=start.run_id, company=start.company, flow=start.flow, template_id=start.template_id
    )
    try:
        await engine.start_scheduled(start)
    except ApiFailure as error:
        bound.error("flow.start_refused", reason=error.message)
        return Term(error.message)
    except UNAVAILABLE as error:
        bound.warning("flow.db_unavailable", error=repr(error))
        return Nak(1.0)
    except Exception:
        bound.exception("flow.start_failed")
        return Nak(5.0)
    return Ack()


async def _run_events(engine: FlowEngine, bus: Bus, stopping: asyncio.Event) -> None:
    await ensure_flow_consumer(bus.js, bus.layout)
    await _resend(engine)
    consumer = BatchPuller(bus.nc, s.EVENTS_STREAM, FLOWS_CONSUMER)
    try:
        while not stopping.is_set():
            await _batch(engine, consumer, await consumer.fetch(BATCH, timeout=1.0))
    finally:
        await consumer.close()


_OUTCOME = re.compile(rb'"final"\s*:\s*true|"status"\s*:\s*"processed"')
"""What an event that may end a flow node holds; any other event is acked unread."""


def _job_id(msg: Any) -> str:
    """The job id is the subject's last token (`jetjobs.events.<company>.<job>`)."""
    return str(msg.subject).rsplit(".", 1)[-1]


async def _flow_outcomes(engine: FlowEngine, consumer: BatchPuller, msgs: list[Any]) -> list[Any] | None:
    """The messages that are outcomes of flow nodes' jobs, the rest acked without
    decoding (most events are of other jobs, or not outcomes); None when the
    database cannot say which jobs run flow nodes."""
    outcomes = [m for m in msgs if _OUTCOME.search(m.data)]
    try:
        nodes = await engine.node_jobs([_job_id(m) for m in outcomes]) if outcomes else set()
    except UNAVAILABLE as error:
        log.warning("flow.db_unavailable", events=len(msgs), error=repr(error))
        for msg in msgs:
            await settle(msg, Nak(1.0))
        return None
    mine = [m for m in outcomes if _job_id(m) in nodes]
    chosen = {id(m) for m in mine}
    try:
        await consumer.ack([m for m in msgs if id(m) not in chosen])
    except Exception as error:  # they come again, and are acked again
        log.warning("flow.ack_failed", events=len(msgs), error=repr(error))
    return mine


async def _batch(engine: FlowEngine, consumer: BatchPuller, msgs: list[Any]) -> None:
    """One step for the flow nodes' outcomes of the batch, each settled the same way."""
    mine = await _flow_outcomes(engine, consumer, msgs)
    deliveries = []
    for msg in mine or []:
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
