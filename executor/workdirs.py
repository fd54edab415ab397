"""Private working directories for job attempts, reused when a job leaves them clean.

On ext4, creating and removing a directory costs a couple of hundred µs of
kernel time per job (an inode and a block allocated, then freed). So a
directory its job left empty (and still private) goes back to a small pool
for the next attempt instead of being removed; one the job wrote into, or
opened up, is removed with everything in it, as before. A job never sees
another job's files: it starts in an empty directory either way.

Nor does any process of an earlier job work in it. Once a job's process has
ended, every process still working in its directory (or below), and every
process still in the session its first process led, is killed (SIGTERM, then
SIGKILL after the grace), by a sweep in a thread every SWEEP_EVERY seconds
while the outcome is reported: one walk of /proc, about 5 µs a process, covers
every job that finished since the last. Only then is the directory pooled, and only if
no process works in it any more; otherwise it is removed and the next job gets
a new one. A process that left both the job's session and its directory (a
daemon that moved to `/`) cannot be told from any other, and is not found.

What a killed executor left is removed by the next one to start (`leftovers`),
and a job it left running is killed: at the start and every `ORPHANS_EVERY`
seconds after, by each executor of the host that shares its TMPDIR."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from types import TracebackType

import structlog

from . import leftovers
from .joblog import JobLog
from .metrics import ExecutorMetrics

log = structlog.get_logger("jetjobs.executor")

ORPHANS_EVERY = 5.0
"""Seconds between looks for jobs of dead executors still running (a scan of /proc)."""
SWEEP_EVERY = 0.2
"""Seconds between looks for what finished jobs left running: one walk of /proc (about
5 µs a process) covers every job that finished in between, whatever the job rate."""
POOLED = 512
"""Empty directories kept for reuse beyond the slots: a directory comes back only with a
sweep, so the pool holds those of every job finished between two sweeps (at 1,000
short jobs a second, 200), and a job rarely makes and removes one of its own."""


class NoWorkdir(Exception):
    """A job's working directory cannot be made: TMPDIR is full (no space or no inodes
    left), gone, or not writable. The job is handed back, not run."""


@dataclass(frozen=True)
class Host:
    """The job whose process ran in a directory: what finding and killing what it
    left running needs, and where to tell of it."""

    pid: int
    """The job's first process, which led its session."""
    grace: float
    jlog: JobLog
    metrics: ExecutorMetrics


@dataclass(frozen=True)
class Vacating:
    """A finished job's directory, waiting for the sweep."""

    path: str
    clean: bool
    host: Host


class Workdirs:
    """The working directories of one executor, under the temporary folder
    (`TMPDIR`) it was started with; at most `keep` wait in the pool."""

    def __init__(self, keep: int, base: str | None = None) -> None:
        self._keep = keep
        self._base = base or tempfile.gettempdir()
        self._idle: list[str] = []
        self._closed = False
        self._vacating: list[Vacating] = []
        self._running: set[int] = set()
        """The first pids of the jobs running here: a session such a job leads is never taken
        for a finished job's (whose first pid it may have taken over)."""
        self._sweeper: asyncio.Task[None] | None = None
        self._prefix = leftovers.prefix()
        self._uid = os.getuid()

    async def sweep(self) -> None:
        """Kill the jobs of executors that died under the same folder and remove their
        directories, in a thread: a big TMPDIR must not hold up the start."""
        await self._clear(always=True)

    async def tend(self, every: float = ORPHANS_EVERY) -> None:
        """Sweep, then every `every` seconds kill the jobs of executors that died
        since (and remove their directories); until cancelled."""
        await self.sweep()
        while True:
            await asyncio.sleep(every)
            await self._clear(always=False)

    async def _clear(self, always: bool) -> None:
        """Kill what dead executors' jobs still run here; then remove dead executors'
        directories, `always` or when something was killed."""
        try:
            killed = await asyncio.to_thread(leftovers.stop_orphans, self._base)
            for orphans in killed:
                directory = os.path.join(self._base, orphans.directory)
                log.warning("executor.orphans_killed", pids=list(orphans.pids), directory=directory)
            if not (always or killed):
                return
            removed = await asyncio.to_thread(leftovers.sweep, self._base)
        except Exception:  # a leftover is never worth stopping the executor for
            log.exception("executor.workdirs_sweep_failed", folder=self._base)
            return
        log.info("executor.workdirs_swept", removed=removed, folder=self._base)

    def attempt(self) -> Workdir:
        """`async with workdirs.attempt() as workdir:` an empty private directory, `workdir.path`."""
        return Workdir(self)

    @property
    def idle(self) -> int:
        """Directories in the pool now."""
        return len(self._idle)

    def _take(self) -> str:
        if self._idle:
            return self._idle.pop()
        try:
            return tempfile.mkdtemp(prefix=self._prefix, dir=self._base)
        except OSError as error:
            raise NoWorkdir(
                f"cannot create a working directory in TMPDIR {self._base}: {error.strerror or error} "
                "(free space or inodes there, or start the executor with TMPDIR set to a writable folder)"
            ) from None

    async def _give_back(self, path: str, clean: bool) -> None:
        if clean and len(self._idle) < self._keep:
            self._idle.append(path)
            return
        try:
            os.rmdir(path)
        except OSError:
            await asyncio.to_thread(shutil.rmtree, path, True)

    def _vacate(self, path: str, clean: bool, host: Host) -> None:
        """Queue the directory to be vacated: the next sweep kills what its job left
        running, then gives it back. Neither the job's outcome nor its slot waits."""
        self._vacating.append(Vacating(path, clean, host))
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        """Vacate what finished jobs left, every SWEEP_EVERY seconds while any waits: one
        walk of /proc, in a thread, covers every job that finished meanwhile."""
        while self._vacating and not self._closed:
            await asyncio.sleep(SWEEP_EVERY)
            batch, self._vacating = self._vacating, []
            try:
                done = await asyncio.to_thread(self._vacate_now, batch, frozenset(self._running))
            except Exception as error:  # left where they are, never reused
                for one in batch:
                    one.host.jlog.warning("job.workdir_not_vacated", directory=one.path, error=repr(error))
                continue
            for one, (vacated, reusable) in zip(batch, done, strict=True):
                self._vacated(one, vacated, reusable)

    def _vacate_now(
        self, batch: list[Vacating], spare: frozenset[int] = frozenset()
    ) -> list[tuple[leftovers.Vacated, bool]]:
        """Kill what the jobs left running; each directory may serve again if it was left
        clean, no process works in it after the kill and nothing was written into it
        meanwhile. If not, it goes."""
        jobs = [(os.path.basename(one.path), one.host.pid) for one in batch]
        grace = max(one.host.grace for one in batch)
        done: list[tuple[leftovers.Vacated, bool]] = []
        for one, vacated in zip(batch, leftovers.stop_escaped(self._base, jobs, grace, spare), strict=True):
            reusable = one.clean and not vacated.busy and self._clean(one.path)
            if not reusable:
                _remove(one.path)
            done.append((vacated, reusable))
        return done

    def _vacated(self, one: Vacating, vacated: leftovers.Vacated, reusable: bool) -> None:
        for escapee in vacated.killed:
            one.host.jlog.warning(
                "job.escaped_killed", pid=escapee.pid, found=escapee.found, directory=one.path
            )
            one.host.metrics.escaped_killed(escapee.found)
        if vacated.busy:
            one.host.jlog.warning("job.workdir_busy", directory=one.path, reused=False)
        if not reusable:
            return
        if len(self._idle) < self._keep and not self._closed:
            self._idle.append(one.path)
        else:
            with contextlib.suppress(OSError):
                os.rmdir(one.path)

    def _clean(self, path: str) -> bool:
        """Still a private directory of ours with nothing in it."""
        try:
            if not leftovers.private(os.lstat(path), self._uid):
                return False
            with os.scandir(path) as entries:
                return next(entries, None) is None
        except OSError:
            return False

    def close(self) -> None:
        """Vacate what the last jobs left and remove the pooled directories (when the
        executor stops); a directory a sweep under way is vacating is removed once it is."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        batch, self._vacating = self._vacating, []
        if batch:
            for one, (vacated, _) in zip(
                batch, self._vacate_now(batch, frozenset(self._running)), strict=True
            ):
                self._vacated(one, vacated, False)
        idle, self._idle = self._idle, []
        for path in idle:
            with contextlib.suppress(OSError):
                os.rmdir(path)


class Workdir:
    """One attempt's directory: taken on enter, pooled or removed on exit."""

    def __init__(self, pool: Workdirs) -> None:
        self._pool = pool
        self.path = ""
        self._verdict: bool | None = None
        self._host: Host | None = None

    def hosts(self, pid: int, grace: float, jlog: JobLog, metrics: ExecutorMetrics) -> None:
        """The job's process `pid` started here: what it leaves running when it ends is
        killed before the directory serves again. A runner that starts no process
        (pid 0) leaves nothing."""
        self._host = Host(pid, grace, jlog, metrics) if pid > 0 else None
        if self._host is not None:
            self._pool._running.add(pid)

    def left_clean(self) -> bool:
        """Whether the job left the directory as it found it: private and empty.
        Looked at once, after the job; the answer also decides whether it is pooled."""
        if self._verdict is None:
            self._verdict = self._pool._clean(self.path)
        return self._verdict

    async def __aenter__(self) -> Workdir:
        self.path = self._pool._take()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        clean = self.left_clean()
        if self._host is not None:
            self._pool._running.discard(self._host.pid)
        if self._host is None or not clean:  # what the job left is removed before its outcome is told
            await self._pool._give_back(self.path, clean)
        if self._host is not None:
            self._pool._vacate(self.path, clean, self._host)


def _remove(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        shutil.rmtree(path, ignore_errors=True)
