"""The store service: migrations, projection loops, templates board and API, started and stopped as one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import structlog

from bus import ApiServer, Bus, Layout, TemplateBoard, refuse_beside_older_stores
from bus.batches import BatchPuller
from bus.clock import ClockCheck
from bus.connection import redacted
from bus.tasks import stop_tasks
from bus.telemetry import Telemetry

from .api import StoreApi
from .board import BoardKeeper
from .credentials import Keyring
from .db import connect, open_pool, redact
from .flow_api import FlowApi
from .flow_loop import run_flows
from .key_check import warn_unopenable
from .lifecycle_api import LifecycleApi
from .metrics import instrument
from .migrate import migrate, schema_version
from .projection import Projection, Tuning, feeds
from .reaper import Reaper, ReaperTiming
from .retention import Retention
from .retention_api import RetentionApi
from .retention_loop import keep_history
from .schedule_api import ScheduleApi
from .template_delete import TemplateDeletion
from .template_secrets import seal_at_start
from .tenants import with_tenants
from .warmup import warm

log = structlog.get_logger("jetjobs.store")

STOP_GRACE = 10.0
"""Seconds the projection loops get to finish the batch in hand when stopping."""


@dataclass(frozen=True)
class StoreConfig:
    """Where the store reads from and writes to, and how big its batches are."""

    nats_url: str
    database_url: str
    batch_size: int = Tuning.batch_size
    linger: float = Tuning.linger
    """Seconds a busy projection lets messages gather between transactions (see `Tuning`)."""
    name: str = "jetjobs-store"
    pool_size: int = 10
    keyring: Keyring | None = None
    """The operator's secret keys; without them the store cannot keep credentials."""
    require_tokens: bool = False
    """Refuse API requests without a valid token (see `store.tokens`)."""
    retention: Retention = field(default_factory=Retention)
    """How long final history and the audit log are kept (by default, for ever)."""


CLOCK_WAIT = 2.0
"""Seconds a clock check may wait for the server before it is given up until the next."""


def clock_effect(offset: float) -> str:
    """What a clock `offset` seconds off does to a store: the jobs it dispatches (run
    now, retried, backfilled, flow nodes) carry its time as `dispatched_at`, which
    executors judge lateness by."""
    if offset < 0:
        return (
            "the jobs it dispatches (run now, retried, backfilled, flow nodes) look that much older to "
            f"executors, which refuse as late (`undelivered`) those whose delivery timeout is under "
            f"{-offset:.0f} s"
        )
    return (
        "the jobs it dispatches (run now, retried, backfilled, flow nodes) look that much younger to "
        "executors, which take them after their delivery timeout has passed"
    )


def _version() -> str:
    try:
        return metadata.version("jetjobs")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _report(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("store.task_failed", task=task.get_name(), exc_info=task.exception())


class StoreService:
    """Projects the bus into Postgres and serves the API over NATS."""

    def __init__(
        self, config: StoreConfig, layout: Layout | None = None, telemetry: Telemetry | None = None
    ) -> None:
        self._config = config
        self._layout = layout or Layout()
        self._pool: Any = None
        self._bus: Bus | None = None
        self._server: ApiServer | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._helpers: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._metrics = instrument(telemetry, lambda: self._bus, lambda: self._pool, feeds())

    async def start(self) -> None:
        """Check that no older store runs, migrate, connect, provision, resync the board,
        start loops and API; return once ready."""
        self._stopping = asyncio.Event()
        await migrate(self._config.database_url, first=self._refuse_beside_older_stores)
        self._pool = await open_pool(self._config.database_url, self._config.pool_size, warm)
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise
        log.info(
            "store.started", database=redact(self._config.database_url), nats=redacted(self._config.nats_url)
        )

    async def _start(self) -> None:
        self._bus = bus = await Bus.open(self._config.nats_url, self._config.name, self._layout, store=True)
        bus.publisher.clock = clock = ClockCheck(bus.js, "store", clock_effect, self._metrics.clock_offset)
        self._helpers.append(self._spawn(clock.follow(CLOCK_WAIT), "clock"))
        board = BoardKeeper(self._pool, await TemplateBoard.open(bus.js))
        await self._metrics.companies(self._pool)
        await seal_at_start(self._pool, self._config.keyring)
        await warn_unopenable(self._pool, self._config.keyring)
        await board.resync()
        self._helpers.append(self._spawn(board.run(), "board"))
        self._helpers.append(self._spawn(board.refill(), "board_refill"))
        tuning = Tuning(
            batch_size=self._config.batch_size, linger=self._config.linger, ack_wait=self._layout.ack_wait
        )
        for feed in feeds():
            consumer = BatchPuller(bus.nc, feed.stream, feed.durable)
            projection = Projection(
                feed, consumer, self._pool, self._stopping, tuning, self._metrics.committed, bus.publisher
            )
            self._loops.append(self._spawn(projection.run(), feed.durable))
        self._server = ApiServer(
            with_tenants(
                self._pool,
                board,
                self._config.keyring,
                {
                    **StoreApi(
                        self._pool, bus.publisher, board, self._config.keyring, self._metrics.company_created
                    ).handlers(),
                    **LifecycleApi(self._pool, bus).handlers(),
                    **ScheduleApi(self._pool, bus, board).handlers(),
                    **TemplateDeletion(self._pool, board).handlers(),
                    **(flows := FlowApi(self._pool, bus, self._config.keyring)).handlers(),
                    **RetentionApi(self._connect, self._metrics.pruned).handlers(),
                },
                self._config.require_tokens,
            )
        )
        timing = ReaperTiming(every=self._layout.runner_beat, silent_for=self._layout.runner_ttl)
        reaper = Reaper(self._pool, bus, timing)
        self._helpers.append(self._spawn(reaper.run(self._stopping), "reaper"))
        self._helpers.append(
            self._spawn(run_flows(flows.engine, bus, self._config.database_url, self._stopping), "flows")
        )
        self._keep_history()
        await self._server.start(bus.nc, _version(), schema_version())

    async def _refuse_beside_older_stores(self) -> None:
        await refuse_beside_older_stores(self._config.nats_url, self._config.name, schema_version())

    async def _connect(self) -> Any:
        return await connect(self._config.database_url)

    def _keep_history(self) -> None:
        policy = self._config.retention
        log.info("store.retention", days=policy.days or "forever", audit_days=policy.audit_days or "forever")
        if policy.active:
            work = keep_history(self._connect, policy, self._stopping, self._metrics.pruned)
            self._helpers.append(self._spawn(work, "retention"))

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=f"store.{name}")
        task.add_done_callback(_report)
        return task

    async def stop(self) -> None:
        """Stop answering, let the loops finish their batch, close everything; idempotent."""
        self._stopping.set()
        if self._server is not None:
            await self._server.stop()
            self._server = None
        await stop_tasks(self._helpers)
        await stop_tasks(self._loops, grace=STOP_GRACE)
        self._helpers, self._loops = [], []
        if self._bus is not None:
            await self._bus.close()
            self._bus = None
        if self._pool is not None:
            await _close_pool(self._pool)
            self._pool = None


async def _close_pool(pool: Any) -> None:
    try:
        await asyncio.wait_for(pool.close(), STOP_GRACE)
    except TimeoutError:
        with contextlib.suppress(Exception):
            pool.terminate()
