"""The scheduler service: follows the templates board and publishes each due
slot the moment it is due, sleeping in between (no polling cycle)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from bus import Bus, Layout, Loaded, Publisher, Removed, TemplateBoard, TemplateChange

from .firing import Failed, Firing, Outcome, Published, Unbuildable, build, publish
from .plan import Backoff, Due, Plan

log = structlog.get_logger("jetjobs.scheduler")


def utcnow() -> datetime:
    """The wall clock every slot is compared with."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class SchedulerConfig:
    """How to reach NATS and how patiently to retry."""

    nats_url: str
    name: str = "jetjobs-scheduler"
    """Connection name, shown by `nats server report connections`."""
    retry_delay: float = 1.0
    """Seconds before a slot whose publish failed is tried again; doubles per failure."""
    retry_max_delay: float = 30.0
    """Cap on that pause, so a slot is retried at least this often while NATS is unwell."""
    watch_retry_delay: float = 1.0
    """Seconds before watching the templates board again after the watch failed."""
    stop_grace: float = 5.0
    """Seconds `stop()` lets a publish in flight finish before cancelling it."""


class SchedulerService:
    """Publishes every template's slots, deduplicated by (template, slot)."""

    def __init__(self, config: SchedulerConfig, layout: Layout | None = None) -> None:
        self._config = config
        self._layout = layout
        self._plan = Plan(Backoff(config.retry_delay, config.retry_max_delay))
        self._wake = asyncio.Event()
        self._loaded = asyncio.Event()
        self._bus: Bus | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def plan(self) -> Plan:
        """What the scheduler currently knows (read-only use: metrics, tests)."""
        return self._plan

    async def start(self) -> None:
        """Connect, read every template on the board, then start firing."""
        if self._bus is not None:
            return
        self._reset()
        self._bus = await Bus.open(self._config.nats_url, self._config.name, self._layout)
        try:
            board = await TemplateBoard.open(self._bus.js)
            self._watcher = asyncio.create_task(self._follow(board), name="scheduler-watch")
            await self._until_loaded(self._watcher)
        except BaseException:
            await self.stop()
            raise
        self._runner = asyncio.create_task(self._run(self._bus.publisher), name="scheduler-run")
        log.info("scheduler.started", templates=len(self._plan))

    async def stop(self) -> None:
        """Let a publish in flight finish (within `stop_grace`), then disconnect."""
        self._stopping = True
        self._wake.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await _finish(runner, self._config.stop_grace)
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            await _finish(watcher, 0.0)
        bus, self._bus = self._bus, None
        if bus is not None:
            await bus.close()
            log.info("scheduler.stopped")

    def _reset(self) -> None:
        """A fresh start: the board is read again from the beginning."""
        self._plan = Plan(Backoff(self._config.retry_delay, self._config.retry_max_delay))
        self._wake = asyncio.Event()
        self._loaded = asyncio.Event()
        self._stopping = False

    async def _until_loaded(self, watcher: asyncio.Task[None]) -> None:
        """Return once the board's initial content is in the plan; raise if the watch died first."""
        loaded = asyncio.create_task(self._loaded.wait())
        try:
            await asyncio.wait({watcher, loaded}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            loaded.cancel()
        if not self._loaded.is_set():
            watcher.result()

    # -- following the board -------------------------------------------------

    async def _follow(self, board: TemplateBoard) -> None:
        """Watch the board for ever; after a failure, watch again and resynchronise."""
        while True:
            try:
                await self._watch_once(board)
            except Exception as error:
                if not self._loaded.is_set():
                    raise
                log.warning("schedule.watch_failed", error=repr(error))
            await asyncio.sleep(self._config.watch_retry_delay)

    async def _watch_once(self, board: TemplateBoard) -> None:
        seen: set[int] | None = set()
        async for change in board.watch():
            seen = self._apply(change, seen)
            self._wake.set()

    def _apply(self, change: TemplateChange, seen: set[int] | None) -> set[int] | None:
        """Apply one change; `seen` collects the initial load (None once it is done)."""
        match change:
            case Loaded():
                if seen is not None:
                    self._plan.retain(seen)
                self._loaded.set()
                return None
            case Removed(template_id):
                self._plan.remove(template_id)
            case template:
                self._plan.put(template, utcnow())
                if seen is not None:
                    seen.add(template.id)
        return seen

    # -- firing --------------------------------------------------------------

    async def _run(self, publisher: Publisher) -> None:
        """Sleep until the earliest slot or a change, publish what is due, repeat."""
        while not self._stopping:
            self._wake.clear()
            delay = self._delay()
            if delay is None or delay > 0:
                await self._sleep(delay)
                continue
            try:
                await self._fire_due(publisher)
            except Exception:
                log.exception("schedule.loop_failed")
                await self._sleep(self._config.retry_delay)

    def _delay(self) -> float | None:
        """Seconds until the earliest pending timer, None when there is none."""
        due = self._plan.next_due()
        return None if due is None else (due - utcnow()).total_seconds()

    async def _sleep(self, delay: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

    async def _fire_due(self, publisher: Publisher) -> None:
        now = utcnow()
        firings = [f for due in self._plan.take_due(now) if (f := self._buildable(due, now)) is not None]
        outcomes = await publish(publisher, firings)
        for firing, outcome in zip(firings, outcomes, strict=True):
            self._settle(firing, outcome)

    def _buildable(self, due: Due, now: datetime) -> Firing | None:
        """The slot's firing; a slot that cannot make a valid message is skipped loudly."""
        match build(due, now):
            case Firing() as firing:
                return firing
            case Unbuildable(reason=reason):
                log.error("schedule.skipped", template_id=due.template.id, slot=due.slot, reason=reason)
                self._plan.advance(due.template.id, due.slot)
        return None

    def _settle(self, firing: Firing, outcome: Outcome) -> None:
        """Record one outcome; lateness is measured when JetStream has acknowledged."""
        template, slot = firing.due.template, firing.due.slot
        bound = log.bind(template_id=template.id, company=template.company, job_id=firing.message.job_id)
        match outcome:
            case Published(duplicate=True):
                bound.debug("schedule.duplicate", slot=slot)
                self._plan.advance(template.id, slot)
            case Published():
                lateness = round((utcnow() - slot).total_seconds() * 1000, 1)
                bound.info("schedule.fired", slot=slot, lateness_ms=lateness)
                self._plan.advance(template.id, slot)
            case Failed(reason):
                retry_at = self._plan.retry(template.id, slot, utcnow())
                bound.error("schedule.publish_failed", slot=slot, reason=reason, retry_at=retry_at)


async def _finish(task: asyncio.Task[None], grace: float) -> None:
    """Give a task `grace` seconds to end by itself, then cancel it and wait."""
    if grace > 0:
        await asyncio.wait({task}, timeout=grace)
    if not task.done():
        task.cancel()
        await asyncio.wait({task})
