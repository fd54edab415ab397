"""The scheduler against a real nats-server: templates go on the board, job
messages are read back from the JETJOBS_DISPATCH stream."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

import scheduler.service as scheduler_service
from bus import Bus, TemplateBoard
from contracts import subjects as s
from contracts.dispatch import scheduled_job_id
from contracts.messages import JobMessage
from contracts.models import ActiveTemplate
from scheduler import SchedulerConfig, SchedulerService
from tests.stack import eventually

EVERY_SECOND = "* * * * * *"
NEVER_IN_A_TEST = "0 0 1 1 *"


def template(
    template_id: int, cron: str = EVERY_SECOND, revision: str = "r1", **fields: object
) -> ActiveTemplate:
    values: dict[str, object] = {
        "id": template_id,
        "revision": revision,
        "name": f"template-{template_id}",
        "company": "acme",
        "pool": "default",
        "app_id": 1,
        "executable": "/bin/echo",
        "cmdparams": "{GREETING}",
        "env": {"GREETING": "hello"},
        "cron": cron,
        "overlap": "allow",  # no executor here: runs never finish
    }
    values.update(fields)
    return ActiveTemplate.model_validate(values)


@dataclass(frozen=True)
class Stored:
    """One message as JetStream holds it."""

    message: JobMessage
    subject: str
    msg_id: str
    time: datetime


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    connection = await Bus.open(nats_url, "scheduler-test")
    yield connection
    await connection.close()


@pytest.fixture
async def board(bus: Bus) -> TemplateBoard:
    return await TemplateBoard.open(bus.js)


Start = Callable[[], Awaitable[SchedulerService]]


@pytest.fixture
async def start_scheduler(nats_url: str) -> AsyncIterator[Start]:
    """Starts schedulers on this test's NATS; every one is stopped at teardown."""
    started: list[SchedulerService] = []

    async def start() -> SchedulerService:
        service = SchedulerService(SchedulerConfig(nats_url=nats_url, name=f"scheduler-{len(started)}"))
        started.append(service)
        await service.start()
        return service

    yield start
    for service in started:
        await service.stop()


async def stored(bus: Bus) -> list[Stored]:
    """Every message in the dispatch stream, oldest first."""
    state = (await bus.js.stream_info(s.DISPATCH_STREAM)).state
    if state.messages == 0:
        return []
    found = []
    for seq in range(state.first_seq, state.last_seq + 1):
        raw = await bus.js.get_msg(s.DISPATCH_STREAM, seq)
        assert raw.data is not None and raw.subject is not None and raw.time is not None
        message = JobMessage.model_validate_json(raw.data)
        found.append(Stored(message, raw.subject, (raw.headers or {})["Nats-Msg-Id"], raw.time))
    return found


async def of_template(bus: Bus, template_id: int) -> list[Stored]:
    return [m for m in await stored(bus) if m.message.template_id == template_id]


async def until(bus: Bus, template_id: int, count: int, timeout: float = 5.0) -> list[Stored]:
    """Wait until the stream holds at least `count` messages of a template."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(found := await of_template(bus, template_id)) < count:
        assert loop.time() < deadline, f"only {len(found)} of {count} messages of template {template_id}"
        await asyncio.sleep(0.1)
    return found


def assert_one_per_slot(messages: list[Stored]) -> None:
    per_slot = Counter((m.message.template_id, m.message.scheduled_at) for m in messages)
    assert per_slot, "no messages at all"
    assert max(per_slot.values()) == 1, f"duplicated slots: {[k for k, v in per_slot.items() if v > 1]}"


async def test_every_second_template_fires_on_whole_seconds(
    bus: Bus, board: TemplateBoard, start_scheduler: Start
) -> None:
    await board.put(template(1))
    service = await start_scheduler()
    assert service.plan.ids() == {1}
    found = await until(bus, 1, 2, timeout=3.5)
    ids = [m.message.job_id for m in found]
    assert len(set(ids)) == len(ids)
    for item in found:
        slot = item.message.scheduled_at
        assert slot.microsecond == 0
        assert item.message.job_id == scheduled_job_id(1, slot)
        assert item.msg_id == item.message.job_id
        assert item.subject == "jetjobs.dispatch.acme.default"
        assert item.message.argv == ["/bin/echo", "hello"]
        lateness = (item.time - slot).total_seconds()
        assert 0 <= lateness < 0.2, f"slot {slot} stored {lateness * 1000:.0f} ms late"


async def test_start_returns_after_the_initial_load(board: TemplateBoard, start_scheduler: Start) -> None:
    for template_id in range(1, 21):
        await board.put(template(template_id, cron=NEVER_IN_A_TEST))
    await board.remove(20)
    service = await start_scheduler()
    assert service.plan.ids() == set(range(1, 20))


async def test_removed_template_stops_firing(bus: Bus, board: TemplateBoard, start_scheduler: Start) -> None:
    await board.put(template(1))
    await start_scheduler()
    await until(bus, 1, 1, timeout=2.5)
    await board.remove(1)
    await asyncio.sleep(0.3)
    before = len(await of_template(bus, 1))
    await asyncio.sleep(2.0)
    assert len(await of_template(bus, 1)) == before


async def test_changed_template_takes_effect_without_restart(
    bus: Bus, board: TemplateBoard, start_scheduler: Start
) -> None:
    await board.put(template(1, cron=NEVER_IN_A_TEST))
    service = await start_scheduler()
    await asyncio.sleep(1.2)
    assert await of_template(bus, 1) == []

    await board.put(template(1, revision="r2"))
    first = await until(bus, 1, 1, timeout=2.5)
    assert first[0].message.argv == ["/bin/echo", "hello"]

    await board.put(template(1, revision="r3", env={"GREETING": "changed"}))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 3.0
    while not any(m.message.env == {"GREETING": "changed"} for m in await of_template(bus, 1)):
        assert loop.time() < deadline, "the new env never reached a message"
        await asyncio.sleep(0.1)
    assert service.plan.template(1) == template(1, revision="r3", env={"GREETING": "changed"})
    changed = [m for m in await of_template(bus, 1) if m.message.env == {"GREETING": "changed"}]
    assert changed[0].message.argv == ["/bin/echo", "changed"]


async def test_template_added_while_running_starts_firing(
    bus: Bus, board: TemplateBoard, start_scheduler: Start
) -> None:
    service = await start_scheduler()
    assert len(service.plan) == 0
    await board.put(template(7))
    found = await until(bus, 7, 2, timeout=3.5)
    assert all(m.message.job_id == scheduled_job_id(7, m.message.scheduled_at) for m in found)


async def test_two_schedulers_never_store_a_slot_twice(
    bus: Bus, board: TemplateBoard, start_scheduler: Start
) -> None:
    await board.put(template(1))
    await board.put(template(2))
    await start_scheduler()
    await start_scheduler()
    await until(bus, 1, 3, timeout=4.5)
    await until(bus, 2, 3, timeout=1.5)
    assert_one_per_slot(await stored(bus))


async def test_restart_never_stores_a_slot_twice(
    bus: Bus, board: TemplateBoard, start_scheduler: Start
) -> None:
    await board.put(template(1))
    first = await start_scheduler()
    fired = await until(bus, 1, 1, timeout=2.5)
    await first.stop()
    await start_scheduler()
    await until(bus, 1, len(fired) + 2, timeout=3.5)
    assert_one_per_slot(await stored(bus))


async def test_rejected_message_does_not_hold_back_the_others(
    bus: Bus, board: TemplateBoard, start_scheduler: Start
) -> None:
    # Under the server's payload limit on the board, over it once argv repeats the env value.
    big = "x" * 400_000
    await board.put(template(1, cmdparams="{BIG} {BIG}", env={"BIG": big}))
    await board.put(template(2))
    service = await start_scheduler()
    found = await until(bus, 2, 4, timeout=5.5)
    assert await of_template(bus, 1) == []
    assert service.plan.ids() == {1, 2}
    for item in found:
        assert (item.time - item.message.scheduled_at).total_seconds() < 0.2
    # The failed slot stays pending (outside the moment a retry is in flight).
    for _ in range(100):
        if (timer := service.plan.timer(1)) is not None:
            break
        await asyncio.sleep(0.01)
    assert timer is not None and timer.slot == found[0].message.scheduled_at


async def test_invalid_template_is_skipped_and_others_fire(
    bus: Bus, board: TemplateBoard, start_scheduler: Start
) -> None:
    await board.put(template(1, cron="every now and then"))
    await board.put(template(2))
    service = await start_scheduler()
    await until(bus, 2, 1, timeout=2.5)
    assert service.plan.ids() == {2}
    await board.put(template(1, revision="r2"))
    await until(bus, 1, 1, timeout=2.5)


async def refused_reads(service: SchedulerService, count: int) -> None:
    """Wait for the refused-templates gauge (set with each lease renewal) to read `count`."""

    async def reads() -> bool:
        return service.metrics.registry.get_sample_value("jetjobs_scheduler_templates_refused") == count

    await eventually(reads, 10, f"jetjobs_scheduler_templates_refused to read {count}")


async def test_templates_the_scheduler_cannot_schedule_are_counted_and_a_missing_zone_is_named(
    bus: Bus, board: TemplateBoard, start_scheduler: Start
) -> None:
    """A template the store accepted but this host cannot schedule (its time zone
    database lacks the zone) never fires: a gauge counts such templates, for an alert,
    and the log says that the host lacks the zone rather than that the name is wrong."""
    await board.put(template(1, timezone="Mars/Olympus"))
    await board.put(template(2, cron="every now and then"))
    await board.put(template(3))
    with capture_logs() as logs:
        service = await start_scheduler()
        await until(bus, 3, 1, timeout=2.5)
    assert service.plan.ids() == {3} and service.plan.refused() == 2
    await refused_reads(service, 2)
    reasons = {e["template_id"]: e["reason"] for e in logs if e["event"] == "schedule.invalid_template"}
    assert "this host's time zone database lacks the template's zone 'Mars/Olympus'" in reasons[1]
    assert "tzdata" in reasons[1] and "use an IANA name" not in reasons[1]
    await board.put(template(1, revision="r2"))  # mended: it fires and is no longer counted
    await board.remove(2)
    await until(bus, 1, 1, timeout=2.5)
    assert service.plan.refused() == 0
    await refused_reads(service, 0)


async def test_a_template_whose_new_version_is_unreadable_stops_firing(
    bus: Bus, board: TemplateBoard, start_scheduler: Start
) -> None:
    await board.put(template(1))
    service = await start_scheduler()
    await until(bus, 1, 1, timeout=2.5)
    kv = await bus.js.key_value(s.TEMPLATES_BUCKET)
    await kv.put(s.template_key(1), b'{"id": 1, "not": "a template"}')
    await asyncio.sleep(0.3)
    before = len(await of_template(bus, 1))
    await asyncio.sleep(2.0)
    assert service.plan.ids() == set()
    assert len(await of_template(bus, 1)) == before
    assert service.plan.refused() == 1, "counted, for the refused-templates alert"
    await refused_reads(service, 1)


async def test_a_clock_jumping_ahead_hands_the_slots_it_skipped_to_the_misfire_policy(
    bus: Bus, board: TemplateBoard, start_scheduler: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An NTP step or a resumed VM moves the wall clock ahead while the scheduler
    leads: the slots it skipped are not all fired back to back (30 runs within a
    second here, whatever the misfire policy said); under `skip` none runs but a
    slot already being fired, and the schedule goes on from the new time."""
    shift = [timedelta(0)]
    monkeypatch.setattr(scheduler_service, "utcnow", lambda: datetime.now(UTC) + shift[0])
    await board.put(template(1))  # misfire: skip
    await start_scheduler()
    before = await until(bus, 1, 2, timeout=5)
    shift[0] = timedelta(seconds=30)
    landed = datetime.now(UTC) + shift[0]
    await asyncio.sleep(3)
    slots = [m.message.scheduled_at for m in await of_template(bus, 1)]
    passed = [slot for slot in slots if before[-1].message.scheduled_at < slot < landed]
    assert len(passed) <= 2, f"{len(passed)} slots the jump passed were fired"  # at most those in hand
    assert any(slot > landed for slot in slots), "the schedule did not go on from the new time"


async def test_a_clock_jumping_ahead_during_a_sleep_fires_the_next_slot_on_time(
    bus: Bus, board: TemplateBoard, start_scheduler: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wait for the next slot was reckoned by the old time: it ran on for the
    whole jump (a daily template sleeping through an NTP step fired that much late)."""
    shift = [timedelta(0)]
    monkeypatch.setattr(scheduler_service, "utcnow", lambda: datetime.now(UTC) + shift[0])
    await board.put(template(1, cron="*/10 * * * * *"))
    await start_scheduler()
    [first] = await until(bus, 1, 1, timeout=12)
    shift[0] = timedelta(seconds=7)  # the next slot is now about 3 s away, not 10
    jumped = datetime.now(UTC)
    [_, following] = await until(bus, 1, 2, timeout=12)
    assert following.message.scheduled_at == first.message.scheduled_at + timedelta(seconds=10)
    waited = (following.time - jumped).total_seconds()
    assert waited < 5.5, f"the next slot came {waited:.1f} s after the jump"


async def test_the_board_takes_and_drops_templates_in_bulk(board: TemplateBoard) -> None:
    """The store writes the board many templates at a time (at start, and after a change
    to an application many share): every one lands, more than one window's worth."""
    await board.put_all([template(i) for i in range(1, 601)])
    assert await board.ids() == set(range(1, 601))
    await board.remove_all(list(range(1, 301)))
    assert await board.ids() == set(range(301, 601))
