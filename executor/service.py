"""The executor service: pulls a pool's job messages, never more than it has
free slots, and runs each in its own task. A job holds its slot until its process
is gone; reporting its outcome and settling its message go on while the slot
runs the next job."""

from __future__ import annotations

import asyncio
import contextlib
import os

import structlog

from bus import ApiClient, Bus, Delivery, Invalid, Layout, Nak, PullFeed, settle
from bus.tasks import stop_tasks
from bus.telemetry import Telemetry
from contracts import subjects as s
from contracts.messages import JobMessage

from .binding import consumer_name, history_for, open_bus, story_for
from .config import ExecutorConfig
from .control import Control
from .heartbeats import Heartbeats
from .job import Received, Runtime, admitted, reject_invalid, run_delivery
from .lifeline import Lifeline
from .metrics import instrument
from .runners import launcher_for
from .secrets import Tenancy
from .workdirs import POOLED, Workdirs

log = structlog.get_logger("jetjobs.executor")

FETCH_WAIT = 1.0
"""Seconds to wait after a failed pull request before the next."""
PULL_EXPIRES = 5.0
"""Seconds a pull request waits on the server for messages before it is renewed."""
STOP_MARGIN = 10.0
"""Seconds beyond the kill grace to wait for killed jobs to report before cancelling them."""
UNBOUND_NOTICE_EVERY = 30.0
"""Seconds between warnings that a bind-only executor's consumer is gone."""


class ExecutorService:
    """Runs the jobs of one pool with at most `config.slots` processes at a time."""

    def __init__(
        self, config: ExecutorConfig, layout: Layout | None = None, telemetry: Telemetry | None = None
    ) -> None:
        self._config = config
        self._layout = layout or Layout()
        self._bus: Bus | None = None
        self._feed: PullFeed[JobMessage] | None = None
        self._runtime: Runtime | None = None
        self._puller: asyncio.Task[None] | None = None
        self._jobs: dict[asyncio.Task[None], Control] = {}
        self._lifeline: Lifeline | None = None
        self._sweep: asyncio.Task[None] | None = None
        self.exhausted = asyncio.Event()
        """Set when the executor stops by itself (memory ceiling): its runner should exit."""
        self._wake = asyncio.Event()
        self._hurried = asyncio.Event()
        """Set when a stop should not wait for running jobs (a second stop signal)."""
        self._stopping = False
        self._gone: str | None = None
        """Why the server said nobody serves this executor's consumer, until it is seen to."""
        self._next_unbound_notice = 0.0
        self._metrics = instrument(
            telemetry, config.pool, config.slots, lambda: self._bus, lambda: self.running
        )

    @property
    def running(self) -> int:
        """Jobs holding a slot right now (a job whose process ended and whose outcome
        is being reported holds none)."""
        return sum(1 for control in self._jobs.values() if not control.released)

    async def start(self) -> None:
        """Connect, make sure the pool's consumer exists, and start pulling."""
        if self._bus is not None:
            return
        pool = self._config.pool
        bus = await open_bus(self._config, self._layout)
        self._lifeline = Lifeline(
            bus,
            self._config,
            self._layout,
            self._job_ids,
            self._cancel,
            self._out_of_memory,
            self._metrics.clock_offset,
        )
        try:
            await self._lifeline.start()
        except BaseException:
            await bus.close()
            raise
        self._bus = bus
        self._stopping = False
        self._hurried.clear()
        self.exhausted.clear()
        if not self._config.bind_only:  # made again whenever it is found gone
            company = self._config.company
            bus.healer.declare(
                s.DISPATCH_STREAM,
                self._layout.pool_consumer(pool)
                if company is None
                else self._layout.company_consumer(company, pool),
            )
        self._runtime = self._runtime_of(bus)
        self._sweep = asyncio.create_task(self._runtime.workdirs.tend())
        self._feed = PullFeed(
            bus.nc,
            s.DISPATCH_STREAM,
            consumer_name(self._config),
            JobMessage,
            self._delivered,
            expires=PULL_EXPIRES,
            ended=self._wake.set,
            gone=self._consumer_gone,
        )
        bus.stats.on_reconnect.append(self._reconnected)
        self._puller = asyncio.create_task(self._pull(self._feed))
        log.info("executor.started", pool=pool, slots=self._config.slots, runner=self._config.runner_id)

    def _runtime_of(self, bus: Bus) -> Runtime:
        return Runtime(
            publisher=bus.publisher,
            runner=self._config.runner_id,
            grace=self._config.grace,
            output_limit=self._config.output_limit,
            live_output_limit=self._config.live_output_limit,
            heartbeats=Heartbeats(self._layout.ack_wait / 3),
            workdirs=Workdirs(keep=self._config.slots + POOLED),
            cancelled=self._lifeline.cancelled if self._lifeline is not None else {},
            history=history_for(self._config, bus),
            story=story_for(self._config, bus),
            ruling_wait=self._layout.runner_ttl,
            base_env=dict(os.environ),
            launch=launcher_for(self._config),
            metrics=self._metrics,
            tenancy=Tenancy.over(ApiClient(bus.nc, actor=self._config.actor, token=self._config.api_token)),
        )

    async def stop(self) -> None:
        """Stop pulling, let running jobs finish within `drain_timeout`, hand the
        rest back to the pool, and disconnect. Safe to call more than once."""
        bus, self._bus = self._bus, None
        if bus is None:
            return
        self._stopping = True
        self._wake.set()
        if self._puller is not None:
            await self._puller
            self._puller = None
        if self._feed is not None:
            await self._feed.close()
            self._feed = None
        await self._drain()
        if self._runtime is not None:
            await self._runtime.tenancy.artifacts.close()
            await self._runtime.heartbeats.close()
            self._runtime.workdirs.close()
            self._runtime = None
        if self._sweep is not None:
            await stop_tasks([self._sweep])
            self._sweep = None
        if self._lifeline is not None:
            await self._lifeline.stop()
        await bus.close()
        log.info("executor.stopped", pool=self._config.pool, runner=self._config.runner_id)

    def hurry(self) -> None:
        """Stop without waiting for running jobs: those still running are handed back now
        (killed within their grace) rather than after the drain's timeout."""
        self._hurried.set()

    async def _drain(self) -> None:
        """Wait for running jobs, then abort (kill and hand back) those still running."""
        if not self._jobs:
            return
        log.info("executor.draining", running=len(self._jobs), timeout=self._config.drain_timeout)
        jobs = asyncio.create_task(asyncio.wait(set(self._jobs)))
        hurried = asyncio.create_task(self._hurried.wait())
        try:
            await asyncio.wait(
                (jobs, hurried), timeout=self._config.drain_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            await stop_tasks([jobs, hurried])
        late = {task for task in self._jobs if not task.done()}
        for task in late:
            self._jobs[task].hand_back()
        if not late:
            return
        await stop_tasks(late, grace=self._config.grace + STOP_MARGIN)

    def _job_ids(self) -> list[str]:
        """The jobs holding a slot, as the heartbeat announces them: one whose process is
        gone and whose outcome is being reported runs no more (`status` would show more
        slots used than there are)."""
        return sorted(c.job_id for c in self._jobs.values() if c.job_id is not None and not c.released)

    def _cancel(self, job_id: str, reason: str) -> None:
        """A cancel arrived: stop the job if it is here (queued or running)."""
        for control in self._jobs.values():
            if control.job_id == job_id:
                log.info("job.cancelling", job_id=job_id, reason=reason)
                control.cancel(reason)

    def _out_of_memory(self, used: int) -> None:
        """Stop pulling and let the jobs in hand finish; the runner then exits."""
        self._stopping = True
        self._wake.set()
        self.exhausted.set()

    async def _pull(self, feed: PullFeed[JobMessage]) -> None:
        """Keep pull requests outstanding for the free slots, topping them up when a
        job gives its slot back or a request ends. With many slots, requests are
        sent in batches of at least an eighth of them."""
        slots = self._config.slots
        least = max(1, slots // 8)
        while not self._stopping:
            self._wake.clear()
            if self._gone is not None:
                await self._restore()
            try:
                await feed.want(self._room(slots), least)
            except Exception:
                log.exception("executor.fetch_failed", pool=self._config.pool)
                await asyncio.sleep(FETCH_WAIT)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PULL_EXPIRES):
                    await self._wake.wait()

    def _consumer_gone(self, reason: str) -> None:
        """The server says nobody serves the consumer: see to it before pulling again."""
        self._gone = reason
        self._wake.set()

    async def _restore(self) -> None:
        """Have the bus make the consumer (or its stream) again, and pause when that
        could not be done: a bind-only executor may not, and says who must."""
        noticed, self._gone = self._gone, None
        bus = self._bus
        if bus is None or noticed is None:
            return
        if self._config.bind_only:
            self._unbound(noticed)
        elif await bus.healer.restore(noticed):
            return
        await asyncio.sleep(FETCH_WAIT)

    def _unbound(self, noticed: str) -> None:
        now = asyncio.get_running_loop().time()
        if now < self._next_unbound_notice:
            return
        self._next_unbound_notice = now + UNBOUND_NOTICE_EVERY
        company, pool = self._config.company, self._config.pool
        fix = (
            f"have an operator run `jetjobs company consumer {company} --pool {pool}`"
            if company
            else f"start an executor of pool {pool} without --bind-only once"
        )
        log.warning(
            "executor.consumer_missing",
            consumer=consumer_name(self._config),
            noticed=noticed,
            fix=f"this executor may not make it again (--bind-only): {fix}",
        )

    def _room(self, slots: int) -> int:
        """Free slots; and never more jobs in hand than twice the slots, so jobs
        whose reports wait on a slow NATS cannot pile up."""
        return min(slots - self.running, 2 * slots - len(self._jobs))

    def _reconnected(self) -> None:
        """Pull requests do not survive a reconnect for sure: ask again."""
        if self._feed is not None:
            self._feed.forget()
        self._wake.set()

    def _delivered(self, delivered: Delivery[JobMessage] | Invalid) -> None:
        """Start a job task for a delivered message, or hand it straight back when stopping."""
        runtime = self._runtime
        received = admitted(delivered)
        job_id = None if isinstance(received, Invalid) else received.payload.job_id
        control = Control(
            received=asyncio.get_running_loop().time(), job_id=job_id, on_release=self._wake.set
        )
        if self._stopping or runtime is None:
            task = asyncio.create_task(settle(received.msg, Nak()))
        else:
            task = asyncio.create_task(self._handle(received, runtime, control))
        self._jobs[task] = control
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._jobs.pop(task, None)
        self._wake.set()

    async def _handle(self, received: Received, runtime: Runtime, control: Control) -> None:
        """One message; whatever goes wrong is logged and never stops the service.
        A message left unsettled is redelivered once its ack wait runs out."""
        try:
            if isinstance(received, Invalid):
                await reject_invalid(received, runtime.publisher)
            else:
                await run_delivery(received, runtime, control)
        except Exception:
            log.exception("job.unsettled", subject=received.msg.subject)
