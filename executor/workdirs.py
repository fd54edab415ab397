"""Private working directories for job attempts, reused when a job leaves them clean.

On ext4, creating and removing a directory costs a couple of hundred µs of
kernel time per job (an inode and a block allocated, then freed). So a
directory its job left empty (and still private) goes back to a small pool
for the next attempt instead of being removed; one the job wrote into, or
opened up, is removed with everything in it, as before. A job never sees
another job's files: it starts in an empty directory either way.

What a killed executor left is removed by the next one to start (`leftovers`),
and a job it left running is killed: at the start and every `ORPHANS_EVERY`
seconds after, by each executor of the host that shares its TMPDIR."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from types import TracebackType

import structlog

from . import leftovers

log = structlog.get_logger("jetjobs.executor")

ORPHANS_EVERY = 5.0
"""Seconds between looks for jobs of dead executors still running (a scan of /proc)."""


class Workdirs:
    """The working directories of one executor, under the temporary folder
    (`TMPDIR`) it was started with; at most `keep` wait in the pool."""

    def __init__(self, keep: int, base: str | None = None) -> None:
        self._keep = keep
        self._base = base or tempfile.gettempdir()
        self._idle: list[str] = []
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
        return tempfile.mkdtemp(prefix=self._prefix, dir=self._base)

    async def _give_back(self, path: str, clean: bool) -> None:
        if clean and len(self._idle) < self._keep:
            self._idle.append(path)
            return
        try:
            os.rmdir(path)
        except OSError:
            await asyncio.to_thread(shutil.rmtree, path, True)

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
        """Remove the pooled directories (when the executor stops)."""
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
        await self._pool._give_back(self.path, self.left_clean())
