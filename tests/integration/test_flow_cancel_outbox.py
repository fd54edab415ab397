"""The kills a flow cancel keeps in the outbox, on real servers: one that cannot be
made now stays for the next drain and holds up nothing kept after it."""

from __future__ import annotations

from datetime import UTC, datetime

from bus import Bus, CancelBoard, Layout
from bus.infra import provision
from contracts import subjects as s
from contracts.flows import FlowEvent, FlowStatus, flow_events_subject
from store.db import open_pool
from store.flow_kill import CANCELLED, Killer
from store.flow_outbox import Outbox, Sent, Work, keep
from store.migrate import migrate


async def test_a_kill_that_fails_stays_for_the_next_drain_and_holds_up_nothing(
    nats_url: str, database_url: str
) -> None:
    await migrate(database_url)
    bus = await Bus.open(nats_url, "jetjobs-test", Layout())
    pool = await open_pool(database_url, 2)
    try:
        await bus.js.delete_key_value(s.CANCELS_BUCKET)  # no cancel board: a kill cannot be made
        end = FlowEvent(
            run_id="r", company="acme", name="f", status=FlowStatus.CANCELLED, at=datetime.now(UTC)
        )
        async with pool.acquire() as conn:
            await keep(conn, Work(kills=["job-1"]))
            await keep(conn, Work(events=[end]))
        published = await bus.nc.subscribe(flow_events_subject("acme", "r"), max_msgs=1)
        outbox = Outbox(pool, bus.publisher, Killer(pool, bus).kill)

        first = await outbox.drain()
        left = [r["kind"] for r in await pool.fetch("SELECT kind FROM flow_outbox ORDER BY id")]
        await published.next_msg(timeout=5)  # the event behind the failed kill went out

        await provision(bus.js, Layout())  # the cancel board is back
        second = await outbox.drain()
        reason = await (await CancelBoard.open(bus.js)).reason("job-1")
        rest = await pool.fetchval("SELECT count(*) FROM flow_outbox")
    finally:
        await pool.close()
        await bus.close()
    assert first == Sent(rows=1, killed=[], failed=1)
    assert left == ["kill"]
    assert second == Sent(rows=1, killed=["job-1"], failed=0)
    assert reason == CANCELLED, "a job the store has not recorded is put on the cancel board"
    assert rest == 0
