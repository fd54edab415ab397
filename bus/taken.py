"""Whether an executor can have received a job message: a cancel may record that a
job never started only when none can have."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts import subjects as s
from contracts.tenants import tenant_consumer


def executor_consumers(company: str, pool: str) -> list[str]:
    """The durable consumers through which executors receive a company's jobs of `pool`:
    the pool's shared one, and the company's own (`Layout.company_consumer`)."""
    return [s.pool_consumer(pool), tenant_consumer(company, pool)]


async def handed_out(js: JetStreamContext, company: str, pool: str, sequence: int) -> bool:
    """Whether an executor consumer has delivered the dispatch message at `sequence`
    (or passed over it, gone). A consumer hands messages out in stream order, so every
    message it ever delivered lies at or below its last delivered stream sequence; one
    that does not exist has delivered nothing."""
    for name in executor_consumers(company, pool):
        try:
            info = await js.consumer_info(s.DISPATCH_STREAM, name)
        except NotFoundError:
            continue
        if info.delivered is not None and info.delivered.stream_seq >= sequence:
            return True
    return False
