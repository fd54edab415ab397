"""Real executors as subprocesses, a store in the test process, and the record in Postgres.

Executors run as `python -m jetjobs executor` in their own session, so a test can
SIGKILL, SIGSTOP or SIGTERM them (and their jobs) like an operator or the kernel
would. Every process started here is killed by pid at teardown."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bus import Bus, Layout, RunnerBoard
from bus.telemetry import Telemetry
from contracts import subjects as s
from contracts.messages import JobMessage
from store import StoreConfig, StoreService
from tests.stack import eventually

ACK_WAIT = 2.0
LAYOUT = Layout(ack_wait=ACK_WAIT)
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Proc:
    """One service subprocess, leader of its own process group."""

    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def kill_group(self) -> None:
        """The process and every job it started."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGCONT)
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


@dataclass
class Faults:
    """The test's handle on servers, store, executors and the record."""

    nats_url: str
    database_url: str
    bus: Bus
    tmp: Path
    ack_wait: float = ACK_WAIT
    procs: list[Proc] = field(default_factory=list)

    def executor(self, slots: int = 4, **env: str) -> Proc:
        """Start `jetjobs executor` (ack wait ACK_WAIT) as a subprocess."""
        environ = {
            **os.environ,
            "JETJOBS_NATS_URL": self.nats_url,
            "JETJOBS_ACK_WAIT": str(self.ack_wait),
            "JETJOBS_SLOTS": str(slots),
            "JETJOBS_METRICS_PORT": "0",
            "JETJOBS_LOG_LEVEL": "info",
            "PYTHONPATH": str(ROOT),
            **env,
        }
        log = self.tmp / f"executor-{len(self.procs)}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "jetjobs", "executor"],
                env=environ,
                cwd=self.tmp,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(popen, log)
        self.procs.append(proc)
        return proc

    async def ready(self, proc: Proc, timeout: float = 20.0) -> None:
        """Until the executor has announced itself on the runners board."""
        board = await RunnerBoard.open(self.bus.js)

        async def listed() -> bool:
            if proc.popen.poll() is not None:
                raise AssertionError(f"executor exited with {proc.popen.returncode}:\n{proc.tail()}")
            return any(r.pid == proc.pid for r in await board.live())

        await eventually(listed, timeout, f"executor {proc.pid} to register")

    async def submit(self, count: int, argv: Sequence[str], **fields: Any) -> list[str]:
        """Publish `count` job messages for company acme; returns their ids."""
        now = datetime.now(UTC)
        values: dict[str, Any] = {"timeout": 600.0, "timeout_ack": 30.0, "timeout_result": 60.0, **fields}
        messages = [
            JobMessage(
                job_id=uuid.uuid4().hex,
                company="acme",
                argv=list(argv),
                scheduled_at=now,
                dispatched_at=now,
                launched_by="faults",
                **values,
            )
            for _ in range(count)
        ]
        for start in range(0, count, 500):
            await self.bus.publisher.dispatch(messages[start : start + 500])
        return [m.job_id for m in messages]

    async def rows(self, sql: str, *args: Any) -> list[Any]:
        conn = await asyncpg.connect(self.database_url)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    async def jobs(self, ids: Sequence[str]) -> dict[str, Any]:
        found = await self.rows("SELECT * FROM job WHERE id = ANY($1::text[])", list(ids))
        return {r["id"]: r for r in found}

    async def attempts(self, job_id: str) -> list[Any]:
        return await self.rows("SELECT * FROM job_attempt WHERE job_id = $1 ORDER BY attempt", job_id)

    async def ack_pending(self, pool: str = "default") -> int:
        """Messages of `pool` delivered to an executor and not settled yet."""
        info = await self.bus.js.consumer_info(s.DISPATCH_STREAM, s.pool_consumer(pool))
        return int(info.num_ack_pending or 0)

    async def frozen_holding(self, argv: Sequence[str], **fields: Any) -> tuple[Proc, str]:
        """An executor SIGSTOPped while it holds a job it received and never
        acknowledged, with that job's id. It must hold an open pull request when the
        job arrives, so this tries a few times."""
        frozen = self.executor(slots=1)
        await self.ready(frozen)
        for _ in range(5):
            frozen.signal(signal.SIGSTOP)
            [job_id] = await self.submit(1, argv, **fields)
            await asyncio.sleep(0.5)
            if await self.ack_pending() == 1:
                return frozen, job_id
            frozen.signal(signal.SIGCONT)
            await self.all_final([job_id], 20)
        raise AssertionError("the frozen executor never received a job")

    async def all_final(self, ids: Sequence[str], timeout: float) -> dict[str, Any]:
        """Until every job is recorded final; returns their rows."""

        async def done() -> dict[str, Any] | None:
            found = await self.jobs(ids)
            return found if len(found) == len(ids) and all(r["final"] for r in found.values()) else None

        try:
            return await eventually(done, timeout, f"{len(ids)} jobs to be final")
        except AssertionError:
            found = await self.jobs(ids)
            open_ = [(k, r["status"], r["attempt"]) for k, r in found.items() if not r["final"]][:5]
            logs = "\n---\n".join(p.tail() for p in self.procs)
            raise AssertionError(f"{len(found)}/{len(ids)} recorded, open: {open_}\n{logs}") from None

    async def status(self, job_id: str) -> str | None:
        found = await self.jobs([job_id])
        return None if job_id not in found else str(found[job_id]["status"])


def store(
    nats_url: str, database_url: str, layout: Layout = LAYOUT, telemetry: Telemetry | None = None
) -> StoreService:
    return StoreService(StoreConfig(nats_url=nats_url, database_url=database_url), layout, telemetry)


@contextlib.asynccontextmanager
async def faults(
    nats_url: str,
    database_url: str,
    tmp: Path,
    ack_wait: float = ACK_WAIT,
    telemetry: Telemetry | None = None,
) -> AsyncIterator[Faults]:
    """A store in-process (it provisions, with the given ack wait; its metrics in
    `telemetry` when given) and a test bus."""
    layout = Layout(ack_wait=ack_wait)
    service = store(nats_url, database_url, layout, telemetry)
    await service.start()
    bus = await Bus.open(nats_url, "jetjobs-faults", layout)
    harness = Faults(nats_url, database_url, bus, tmp, ack_wait)
    try:
        yield harness
    finally:
        for proc in harness.procs:
            await asyncio.to_thread(proc.kill_group)
        await bus.close()
        await service.stop()
