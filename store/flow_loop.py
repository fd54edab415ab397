"""The orchestrator's loops: the outcomes of flow nodes' jobs (from the flow inbox
the events projection fills, a batch per step), and the flow starts of fired flow
templates (from JetStream)."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from bus import Ack, Bus, Delivery, Invalid, Nak, Publisher, PullConsumer, Term, decode, misaddressed, settle
from bus.flows import FLOW_STARTS_CONSUMER, ensure_flow_starts_consumer
from bus.letters import bury, company_of
from contracts.api import ApiFailure
from contracts.flows import FLOWS_STREAM, FlowStart, flow_start_subject

from .db import UNAVAILABLE, connect
from .errors import StoreUnavailable
from .flow_engine import FlowEngine
from .notify import Bell
from .queries import FLOW_INBOX_CHANNEL

log = structlog.get_logger("jetjobs.flows")

OUTAGE: tuple[type[BaseException], ...] = (*UNAVAILABLE, StoreUnavailable)
"""Postgres is away: for a query, or for the bell's own connection."""

BATCH = 200
"""Outcomes taken at once: a wide flow's many outcomes become one step."""

CHECK_EVERY = 5.0
"""Seconds between looks at the inbox when no bell rings."""

RESEND_EVERY = 1.0
"""Seconds between tries while the outbox holds what a failed publish or kill left, or Postgres is away."""

COMPANY_TOKEN = flow_start_subject("*").split(".").index("*")
"""Where a flow start's subject names its company."""


async def run_flows(engine: FlowEngine, bus: Bus, database_url: str, stopping: asyncio.Event) -> None:
    """Start scheduled flow runs and advance runs on job outcomes until `stopping` is set."""
    await asyncio.gather(_run_outcomes(engine, database_url, stopping), _run_starts(engine, bus, stopping))


async def _run_starts(engine: FlowEngine, bus: Bus, stopping: asyncio.Event) -> None:
    await ensure_flow_starts_consumer(bus.js, bus.layout)
    consumer = PullConsumer(bus.js, FLOWS_STREAM, FLOW_STARTS_CONSUMER)
    try:
        while not stopping.is_set():
            for msg in await consumer.fetch(20, timeout=1.0):
                item = _decode(msg)
                if isinstance(item, Invalid):
                    await settle(msg, await _refuse(bus.publisher, item))
                else:
                    await settle(msg, await _start(engine, item.payload))
    finally:
        await consumer.close()


def _decode(msg: Any) -> Delivery[FlowStart] | Invalid:
    """A valid flow start on its own company's subject (NATS permissions confine a
    tenant to its subjects, not what its payloads claim)."""
    item = decode(FlowStart, msg)
    if isinstance(item, Invalid):
        return item
    return misaddressed(msg, flow_start_subject(item.payload.company)) or item


async def _refuse(publisher: Publisher, invalid: Invalid) -> Term | Nak:
    """A flow start that can never start a run: logged, and dead-lettered for its subject's company."""
    company = company_of(invalid.msg.subject, COMPANY_TOKEN)
    log.error("flow.start_invalid", subject=invalid.msg.subject, company=company, reason=invalid.reason)
    return await bury(publisher, FLOWS_STREAM, invalid, company)


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


async def _run_outcomes(engine: FlowEngine, database_url: str, stopping: asyncio.Event) -> None:
    """Take the flow inbox as the events projection fills it: at once when it rings
    the bell, and at least every `CHECK_EVERY` seconds (a bell rung while this store
    was not listening); drain the outbox when a step's publish or kill failed."""
    bell = Bell(lambda: connect(database_url), FLOW_INBOX_CHANNEL)
    try:
        while not stopping.is_set():
            try:
                if engine.unsent:
                    await _resend(engine)
                while await engine.take_outcomes(BATCH) == BATCH:
                    pass
                await bell.wait(RESEND_EVERY if engine.unsent else CHECK_EVERY)
            except OUTAGE as error:
                log.warning("flow.db_unavailable", error=str(error) or repr(error))
                await asyncio.sleep(RESEND_EVERY)
            except Exception:  # anything else is logged and tried again: the loop never dies
                log.exception("flow.inbox_failed")
                await asyncio.sleep(RESEND_EVERY)
    finally:
        bell.close()


async def _resend(engine: FlowEngine) -> None:
    try:
        sent = await engine.resend()
    except Exception:
        log.exception("flow.resend_failed")
        return
    if sent.rows:
        log.info("flow.resent", rows=sent.rows, killed=len(sent.killed))
