"""The scheduler service: follows the templates board, leads by lease, and
publishes each due slot the moment it is due, sleeping in between (no polling
cycle). The messages of an instant are built shortly before it, handed to the
connection at it, and settled (acks, records) after it, off the timed path.
Standbys follow the board too, ready to take over."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import secrets
import socket
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from bus import Bus, CancelBoard, Layout, Loaded, Removed, TemplateBoard, Unreadable
from bus.clock import ClockCheck
from bus.handoff import Handoff
from bus.lease import Lease
from bus.slots import SlotLog, finished_jobs, records_from
from bus.tasks import stop_tasks
from bus.templates import BoardChange, Posted

from .firer import Firer
from .jumps import CLOCK_CHECK, JumpWatch
from .leader import Leadership, clock_effect
from .metrics import SchedulerMetrics
from .plan import Backoff, Plan
from .recheck import ended
from .runs import Runs
from .takeover import restore_runs

log = structlog.get_logger("jetjobs.scheduler")

MAX_LEAD = 30.0
"""The earliest an instant is prepared, however many slots it has."""

COST_SAMPLE = 64
"""Slots an instant must have for its preparation time to say what one slot costs."""

APPLY_SLICE = 256
"""Board changes applied before other work (a due instant) gets a turn: re-reading
100,000 templates after a reconnect must not hold firing back."""


def utcnow() -> datetime:
    """The wall clock every slot is compared with."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class SchedulerConfig:
    """How to reach NATS, how patiently to retry, and the slot tolerances."""

    nats_url: str
    name: str = "jetjobs-scheduler"
    """Connection name, shown by `nats server report connections`."""
    retry_delay: float = 1.0
    """Seconds before a slot whose publish failed is tried again; doubles per failure."""
    retry_max_delay: float = 30.0
    """Cap on that pause, so a slot is retried at least this often while NATS is unwell."""
    watch_retry_delay: float = 1.0
    """Seconds before watching the templates board again after the watch failed."""
    runs_recheck: float = 60.0
    """Every this many seconds, the runs active for longer are looked up in the events
    stream, in case their final event went unheard (as every run is after a reconnect)."""
    stop_grace: float = 5.0
    """Seconds `stop()` lets a publish in flight finish before cancelling it."""
    late_after: float = 1.0
    """A slot published more than this many seconds after it was due is recorded `late`."""
    misfire_grace: float = 1.0
    """Slots missed by less than this are fired as (late) slots, not handed to the misfire policy."""
    prepare_ahead: float = 0.5
    """Seconds before an instant its messages are built and encoded, so that at the
    instant they only need handing to the connection; longer for an instant with
    so many slots that building them takes longer (twice the measured cost)."""
    max_unsettled: int = 4
    """Instants whose acks may be outstanding at once; beyond that firing waits
    (while NATS is unwell, rather than piling up messages in memory)."""


def _holder(name: str) -> str:
    return f"{name}@{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class SchedulerService:
    """Publishes every template's slots, deduplicated by (template, slot)."""

    def __init__(
        self, config: SchedulerConfig, layout: Layout | None = None, metrics: SchedulerMetrics | None = None
    ) -> None:
        self._config = config
        self._layout = layout or Layout()
        self.metrics = metrics or SchedulerMetrics()
        self.holder = _holder(config.name)
        self._plan = self._new_plan()
        self._runs = Runs()
        self._wake = asyncio.Event()
        self._loaded = asyncio.Event()
        self._reconnected = asyncio.Event()
        self._runs_unheard = asyncio.Event()
        self._bus: Bus | None = None
        self._leadership: Leadership | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: asyncio.Task[None] | None = None
        self._unsettled: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._leading = False
        self._load_started = utcnow()
        self._cost = 1e-4
        """Seconds it takes to prepare one slot, as last measured."""
        self._jumps = JumpWatch(utcnow)

    @property
    def plan(self) -> Plan:
        """What the scheduler currently knows (read-only use: metrics, tests)."""
        return self._plan

    @property
    def bus(self) -> Bus | None:
        """The connection while the service runs (None before `start`, after `stop`);
        for telemetry to report on, not to publish through."""
        return self._bus

    @property
    def leading(self) -> bool:
        """Whether this scheduler fires slots right now."""
        return self._leading

    def _new_plan(self) -> Plan:
        backoff = Backoff(self._config.retry_delay, self._config.retry_max_delay)
        return Plan(backoff, grace=self._config.misfire_grace)

    async def start(self) -> None:
        """Connect, read every template on the board, then lead or stand by."""
        if self._bus is not None:
            return
        self._reset()
        self._bus = bus = await Bus.open(self._config.nats_url, self._config.name, self._layout)
        try:
            await self._start(bus)
        except BaseException:
            await self.stop()
            raise
        log.info("scheduler.started", templates=len(self._plan), holder=self.holder)

    async def _start(self, bus: Bus) -> None:
        bus.stats.on_reconnect += [self._reconnected.set, self._runs_unheard.set]
        board = await TemplateBoard.open(bus.js)
        watcher = self._spawn(self._follow(board), "watch")
        await self._until_loaded(watcher)
        lease = await Lease.open(bus.js, self.holder)
        clock = ClockCheck(bus.js, "scheduler", clock_effect, self.metrics.clock_offset)
        self._leadership = Leadership(lease, self._layout.lease_ttl, self._wake.set, clock)
        await self._leadership.step()
        self._spawn(self._leadership.run(self._beat), "lease")
        self._spawn(self._follow_runs(bus), "runs")
        self._spawn(self._recheck_runs(bus), "runs_recheck")
        slots = SlotLog(bus.js, bus.publisher)
        firer = Firer(
            self._plan,
            self._runs,
            Handoff(bus.nc, bus.publisher),
            slots,
            await CancelBoard.open(bus.js),
            self.metrics,
            holder=self.holder,
            late_after=self._config.late_after,
            clock=utcnow,
        )
        self._runner = asyncio.create_task(self._run(firer, slots, bus), name="scheduler.run")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=f"scheduler.{name}")
        self._tasks.append(task)
        return task

    async def stop(self) -> None:
        """Let a publish in flight finish (within `stop_grace`), give up the lease, disconnect."""
        self._stopping = True
        self._wake.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await stop_tasks([runner], self._config.stop_grace)
        unsettled, self._unsettled = self._unsettled, set()
        await stop_tasks(unsettled, self._config.stop_grace)
        tasks, self._tasks = self._tasks, []
        await stop_tasks(tasks)
        leadership, self._leadership = self._leadership, None
        if leadership is not None and self._bus is not None and self._bus.nc.is_connected:
            await leadership.release()  # else the lease lapses by its TTL
        self._set_leading(False)
        bus, self._bus = self._bus, None
        if bus is not None:
            await bus.close()
            log.info("scheduler.stopped")

    def _reset(self) -> None:
        """A fresh start: the board is read again from the beginning."""
        self._plan = self._new_plan()
        self._runs = Runs()
        self._wake = asyncio.Event()
        self._loaded = asyncio.Event()
        self._reconnected = asyncio.Event()
        self._runs_unheard = asyncio.Event()
        self._stopping = False

    def _beat(self) -> None:
        self.metrics.alive(utcnow())
        self.metrics.templates(len(self._plan), self._plan.refused())

    def _set_leading(self, value: bool) -> None:
        self._leading = value
        self.metrics.leading(value)

    async def _until_loaded(self, watcher: asyncio.Task[None]) -> None:
        """Return once the board's initial content is in the plan; raise if the watch died first."""
        loaded = asyncio.create_task(self._loaded.wait())
        try:
            await asyncio.wait({watcher, loaded}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            loaded.cancel()
        if not self._loaded.is_set():
            watcher.result()

    # -- following the board and the runs ----------------------------------------

    async def _follow(self, board: TemplateBoard) -> None:
        """Watch the board for ever; after a failure, a reconnect or the bucket being
        made again, watch again and resynchronise."""
        while True:
            self._reconnected.clear()
            reason = await self._watch_until_reconnect(board)
            if reason is not None:
                log.info("schedule.watch_restarted", reason=reason)
                continue
            await asyncio.sleep(self._config.watch_retry_delay)

    async def _watch_until_reconnect(self, board: TemplateBoard) -> str | None:
        """Watch until the watch fails (None), the connection came back or the bucket
        was made again (which of these, as the reason to watch again)."""
        watch = asyncio.create_task(self._watch_once(board))
        reconnect = asyncio.create_task(self._reconnected.wait())
        remade = asyncio.create_task(board.remade())
        try:
            await asyncio.wait({watch, reconnect, remade}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await stop_tasks([reconnect, remade])
            restarted = not watch.done()
            if restarted:
                await stop_tasks([watch])
        if restarted:
            return "reconnected" if self._reconnected.is_set() else "bucket made again"
        error = watch.exception()
        if error is not None:
            if not self._loaded.is_set():
                raise error
            log.warning("schedule.watch_failed", error=repr(error))
        return None

    async def _watch_once(self, board: TemplateBoard) -> None:
        seen: set[int] | None = set()
        self._load_started = utcnow()
        self._cost = 1e-4
        """Seconds it takes to prepare one slot, as last measured."""
        self._jumps = JumpWatch(utcnow)
        async for changes in board.follow():
            for number, change in enumerate(changes, 1):
                seen = self._apply(change, seen)
                if number % APPLY_SLICE == 0:
                    await asyncio.sleep(0)
            self._wake.set()

    def _apply(self, change: BoardChange, seen: set[int] | None) -> set[int] | None:
        """Apply one change; `seen` collects the initial load (None once it is done).
        The whole initial load is planned from the instant it began, so no slot
        falls between the start of the load and a template's turn in it. Once it
        is in, the garbage collector stops scanning what is loaded (gc.freeze):
        a full collection over 100,000 templates would otherwise stall firing."""
        match change:
            case Loaded():
                if seen is not None:
                    self._plan.retain(seen)
                    gc.freeze()
                self._loaded.set()
                return None
            case Removed(template_id):
                self._plan.remove(template_id)
            case Unreadable(template_id):
                self._plan.refuse(template_id)
                if seen is not None:
                    seen.add(template_id)
            case Posted(template=template, raw=raw):
                self._plan.put(template, self._load_started if seen is not None else utcnow(), raw)
                if seen is not None:
                    seen.add(template.id)
        return seen

    async def _follow_runs(self, bus: Bus) -> None:
        """Forget a run once its final event is seen (overlap policy), and let the
        owed runs that waited for it go."""
        while True:
            try:
                async for job_id in finished_jobs(bus.nc, self._runs.watching):
                    self._run_ended(job_id)
            except Exception as error:
                log.warning("schedule.runs_watch_failed", error=repr(error))
            await asyncio.sleep(self._config.watch_retry_delay)
            self._runs_unheard.set()

    async def _recheck_runs(self, bus: Bus) -> None:
        """Look the active runs up in the events stream: every one of them after a
        reconnect or a broken subscription (what was published meanwhile went
        unheard, and a `forbid` template would wait for its run's horizon, hours),
        and every `runs_recheck` seconds those fired longer ago than that."""
        every = self._config.runs_recheck
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._runs_unheard.wait(), every)
            fired_before = utcnow() - timedelta(seconds=0 if self._runs_unheard.is_set() else every)
            self._runs_unheard.clear()
            try:
                for run in await ended(bus, self._runs.started_before(fired_before)):
                    log.info("schedule.run_end_found", job_id=run.job_id, company=run.company)
                    self._run_ended(run.job_id)
            except Exception as error:
                log.warning("schedule.runs_recheck_failed", error=repr(error))
                await asyncio.sleep(self._config.watch_retry_delay)
                self._runs_unheard.set()

    def _run_ended(self, job_id: str) -> None:
        template_id = self._runs.finished(job_id)
        if template_id is not None and self._plan.release(template_id):
            self._wake.set()

    # -- leading and firing ------------------------------------------------------

    async def _run(self, firer: Firer, slots: SlotLog, bus: Bus) -> None:
        """Stand by, or take over and fire: sleep until the earliest slot or a change, repeat."""
        assert self._leadership is not None
        while not self._stopping:
            self._wake.clear()
            if not self._leadership.leading:
                self._step_down()
                await self._sleep(None)
                continue
            if not self._leading and not await self._take_over(slots, bus):
                await self._sleep(self._config.retry_delay)
                continue
            self._skip_jumped()
            due = self._plan.next_due()
            if due is None:
                await self._sleep(None)
                continue
            wait = _seconds_until(due) - self._lead(due)
            if wait > 0:
                await self._sleep(min(wait, CLOCK_CHECK))
                continue
            try:
                await self._fire_at(firer, due)
            except Exception:
                log.exception("schedule.loop_failed")
                await self._sleep(self._config.retry_delay)

    async def _fire_at(self, firer: Firer, instant: datetime) -> None:
        """Build the instant's messages now, hand them off at the instant exactly
        (a timer at it, not a polling cycle), and settle them in the background."""
        while len(self._unsettled) >= self._config.max_unsettled:
            await asyncio.wait(self._unsettled, return_when=asyncio.FIRST_COMPLETED)
        started = asyncio.get_running_loop().time()
        batch = await firer.prepare(instant)
        if not batch:
            return
        if len(batch) >= COST_SAMPLE:
            self._cost = (asyncio.get_running_loop().time() - started) / len(batch)
        delay = _seconds_until(instant)
        if delay > 0:
            await asyncio.sleep(delay)
        assert self._leadership is not None
        if not self._leadership.leading:
            return
        handed = await firer.fire(batch)
        self._settle(firer.settle(batch, handed))

    def _lead(self, instant: datetime) -> float:
        """How long before `instant` to prepare it: `prepare_ahead`, or twice what
        its slots are expected to take (a daily 03:00 shared by 25,000 templates)."""
        ahead = self._config.prepare_ahead
        if _seconds_until(instant) > MAX_LEAD:
            return ahead
        return min(MAX_LEAD, max(ahead, 2 * self._cost * self._plan.count_due(instant)))

    def _settle(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name="scheduler.settle")
        self._unsettled.add(task)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[None]) -> None:
        """A settle may have made something due sooner (a failed slot's retry, owed
        runs let go): the runner looks again."""
        self._unsettled.discard(task)
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("schedule.settle_failed", error=repr(task.exception()))

    async def _take_over(self, slots: SlotLog, bus: Bus) -> bool:
        """Become the firing scheduler: read each template's anchor and active run
        from the slot records, then owe the missed slots to the misfire policies."""
        try:
            latest = await slots.latest()
            now = utcnow()
            anchors = {k: r.anchor for k, r in latest.items() if r.anchor is not None}
            self._plan.rebase(anchors, now, await records_from(bus.js, now))
            await restore_runs(bus, self._runs, self._plan, latest, now)
        except Exception as error:
            log.warning("scheduler.takeover_failed", error=repr(error))
            return False
        self._set_leading(True)
        self._jumps.forget()
        log.info("scheduler.took_over", templates=len(self._plan), owed=len(self._plan.backlog()))
        return True

    def _skip_jumped(self) -> None:
        """When the wall clock jumped ahead, the slots it skipped go to their misfire
        policies (`Plan.overdue`) rather than all firing at once."""
        ahead = self._jumps.ahead()
        if ahead <= self._config.misfire_grace:
            return
        behind = self._plan.overdue(utcnow())
        log.warning(
            "scheduler.clock_jumped",
            seconds=round(ahead, 1),
            templates_behind=behind,
            done="the slots it skipped went to each template's misfire policy",
        )

    def _step_down(self) -> None:
        if self._leading:
            self._set_leading(False)
            self._runs.clear()
            log.info("scheduler.stepped_down")

    async def _sleep(self, delay: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)


def _seconds_until(instant: datetime) -> float:
    return (instant - utcnow()).total_seconds()
