"""How an executor reaches its jobs: a pool's shared consumer, which it creates
when missing, or a company's own consumer, to which a per-company executor
whose NATS user may not provision anything (`bind_only`) only binds."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from bus import Bus, Layout, last_event, stored_events
from bus.connection import redacted
from bus.infra import ensure_consumer
from contracts import subjects as s
from contracts.messages import JobEvent
from contracts.tenants import tenant_consumer

from .budget import Story, no_story
from .config import ExecutorConfig, ExecutorStartError
from .job import no_history


def consumer_name(config: ExecutorConfig) -> str:
    """The durable consumer this executor pulls from."""
    if config.company is not None:
        return tenant_consumer(config.company, config.pool)
    return s.pool_consumer(config.pool)


def inbox_prefix(config: ExecutorConfig) -> str:
    """A company's executors receive replies under their own prefix, the only
    inboxes their NATS user may subscribe to."""
    return f"_INBOX_{config.company}" if config.company is not None else "_INBOX"


def history_for(config: ExecutorConfig, bus: Bus) -> Callable[[str, str], Awaitable[JobEvent | None]]:
    """How a redelivered job's last event is looked up. A bind-only user may not
    read the events stream (that would show other companies' events), so it
    does not look: a redelivered job then runs again, as at-least-once allows."""
    return no_history if config.bind_only else functools.partial(last_event, bus.js)


def story_for(config: ExecutorConfig, bus: Bus) -> Story:
    """How a failing job's earlier attempts are looked up; not by a bind-only user, which
    may not read the events stream (each attempt then counts as a run)."""
    return no_story if config.bind_only else functools.partial(stored_events, bus.js)


async def open_bus(config: ExecutorConfig, layout: Layout) -> Bus:
    """Connect and make sure the consumer is there: created when allowed, else checked."""
    name = consumer_name(config)
    try:
        bus = await Bus.open(
            config.nats_url,
            config.name,
            layout,
            provisioning=not config.bind_only,
            inbox_prefix=inbox_prefix(config),
        )
    except TimeoutError:
        raise ExecutorStartError(
            f"NATS at {redacted(config.nats_url)} did not let this executor provision streams: a NATS user "
            "without provisioning rights (a per-company executor) must run with --bind-only"
        ) from None
    try:
        if config.bind_only:
            await _check_bound(bus, name, config)
        else:
            wanted = (
                layout.company_consumer(config.company, config.pool)
                if config.company is not None
                else layout.pool_consumer(config.pool)
            )
            await ensure_consumer(bus.js, s.DISPATCH_STREAM, wanted)
    except TimeoutError:
        await bus.close()
        raise ExecutorStartError(
            f"NATS did not let this executor create consumer {name}: a NATS user without "
            "provisioning rights (a per-company executor) must run with --bind-only"
        ) from None
    except BaseException:
        await bus.close()
        raise
    return bus


async def _check_bound(bus: Bus, name: str, config: ExecutorConfig) -> None:
    create = f"jetjobs company consumer {config.company} --pool {config.pool}" if config.company else ""
    try:
        await bus.js.consumer_info(s.DISPATCH_STREAM, name)
    except TimeoutError:
        raise ExecutorStartError(
            f"NATS did not answer about consumer {name}: its user needs permission to publish "
            f"$JS.API.CONSUMER.INFO.{s.DISPATCH_STREAM}.{name} (see deploy/nats/isolation.conf)"
        ) from None
    except Exception as error:
        how = f"have an operator run `{create}`" if create else "start an executor without --bind-only once"
        raise ExecutorStartError(
            f"cannot bind to consumer {name} on {s.DISPATCH_STREAM} ({error}): {how}"
        ) from None
