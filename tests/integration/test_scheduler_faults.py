"""The scheduler across a NATS crash: slots due while the server was down are
published once it is back, each exactly once, and the board is still followed."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from datetime import timedelta

from bus import Bus, TemplateBoard
from contracts import subjects as s
from contracts.messages import JobMessage
from contracts.models import ActiveTemplate
from contracts.schedule import Overlap
from jetjobs.embedded import NatsServer
from scheduler import SchedulerConfig, SchedulerService
from tests.servers import shutdown


def every_second(template_id: int) -> ActiveTemplate:
    return ActiveTemplate(
        id=template_id,
        revision="r1",
        name="tick",
        company="acme",
        pool="default",
        app_id=1,
        executable="/bin/true",
        cron="* * * * * *",
        overlap=Overlap.ALLOW,
    )


async def messages(url: str) -> list[JobMessage]:
    bus = await Bus.open(url, "fault-test-reader")
    try:
        state = (await bus.js.stream_info(s.DISPATCH_STREAM)).state
        found = []
        for seq in range(state.first_seq, state.last_seq + 1):
            raw = await bus.js.get_msg(s.DISPATCH_STREAM, seq)
            assert raw.data is not None
            found.append(JobMessage.model_validate_json(raw.data))
        return found
    finally:
        await bus.close()


async def put(url: str, template: ActiveTemplate) -> None:
    bus = await Bus.open(url, "fault-test-writer")
    try:
        await (await TemplateBoard.open(bus.js)).put(template)
    finally:
        await bus.close()


async def followed_again(service: SchedulerService, template_id: int, timeout: float = 6.0) -> None:
    """Wait until a template put after the crash reaches the scheduler: the board's
    watch is restarted as soon as the connection is back, within a few seconds
    (nats-py alone re-creates it only after two missed idle heartbeats, 10-20 s)."""
    for _ in range(int(timeout * 10)):
        if template_id in service.plan.ids():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"template {template_id} never reached the scheduler after the crash")


async def test_slots_due_during_a_nats_crash_are_published_after_it(embedded_nats: NatsServer) -> None:
    url = embedded_nats.url
    await put(url, every_second(1))
    service = SchedulerService(SchedulerConfig(nats_url=url, retry_delay=0.2, retry_max_delay=0.5))
    await service.start()
    revived: NatsServer | None = None
    try:
        await asyncio.sleep(1.5)
        await asyncio.to_thread(embedded_nats.kill)
        await asyncio.sleep(2.5)
        revived = await asyncio.to_thread(NatsServer.start, embedded_nats.data_dir, port=embedded_nats.port)
        await asyncio.sleep(1.0)
        await put(url, every_second(2))
        await followed_again(service, 2)
        await asyncio.sleep(1.5)
        await service.stop()
        found = await messages(url)
    finally:
        await service.stop()
        if revived is not None:
            await asyncio.to_thread(shutdown, revived)

    assert any(m.template_id == 2 for m in found), "a template added after the crash never fired"
    slots = sorted(m.scheduled_at for m in found if m.template_id == 1)
    assert max(Counter(slots).values()) == 1, "a slot was stored twice"
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert all(gap == timedelta(seconds=1) for gap in gaps), f"slots missing: {slots}"
    assert len(slots) >= 6
