"""Running one job's command as a process group: start, wait, time out, kill.

Commands are argv lists handed to exec, never to a shell. Each job gets its
own session, so a timeout or shutdown reaches every process it spawned, and
nothing it started outlives it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

from .output import Capture, Sink, collect

READER_GRACE = 1.0
"""Seconds to wait for output after the group is gone; only a process that
left the group could still hold the pipes open."""


@dataclass(frozen=True)
class Launch:
    """Everything needed to start one attempt's process."""

    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: str
    output_limit: int
    runner: str
    on_output: Sink | None = None
    """Gets the output as it is written (live logs), besides the capture."""
    job_id: str = ""
    image: str = ""
    """The application's OCI image: what a container runner starts."""


@dataclass(frozen=True)
class NotRunnable:
    """The command cannot start here (missing or not executable); retrying will not help."""

    reason: str


@dataclass(frozen=True)
class Exited:
    """The process ended by itself: its exit status, or 128+N and N when signal N killed it."""

    code: int
    signal: int | None = None


@dataclass(frozen=True)
class TimedOut:
    """The process did not finish before its deadline and was killed."""


@dataclass(frozen=True)
class Aborted:
    """The executor stopped and killed the process before it finished."""


Ending = Exited | TimedOut | Aborted


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _exited(returncode: int) -> Exited:
    return Exited(128 - returncode, -returncode) if returncode < 0 else Exited(returncode)


def _why_not(spec: Launch, error: OSError | ValueError) -> str:
    name = spec.argv[0]
    if isinstance(error, FileNotFoundError):
        place = "on" if "/" in name else "on PATH of"
        return (
            f"executable {name!r} not found {place} runner {spec.runner}: install it there or fix the command"
        )
    if isinstance(error, PermissionError):
        return f"executable {name!r} is not executable by runner {spec.runner}: check its permissions"
    detail = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return f"cannot start {name!r} on runner {spec.runner}: {detail}"


async def spawn(spec: Launch) -> asyncio.subprocess.Process | NotRunnable:
    """Start `spec.argv` in its own session with output piped, or say why it cannot start."""
    try:
        return await asyncio.create_subprocess_exec(
            *spec.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=spec.cwd,
            env=dict(spec.env),
            start_new_session=True,
        )
    except (OSError, ValueError) as error:
        return NotRunnable(_why_not(spec, error))


async def launch(spec: Launch) -> Running | NotRunnable:
    """Start the process with output captured, or say why it cannot start."""
    process = await spawn(spec)
    if isinstance(process, NotRunnable):
        return process
    return Running(process, spec.output_limit, spec.on_output)


class Running:
    """A started process group whose output is being read as it is written."""

    def __init__(
        self, process: asyncio.subprocess.Process, output_limit: int, sink: Sink | None = None
    ) -> None:
        self._process = process
        self.stdout = Capture(output_limit)
        self.stderr = Capture(output_limit)
        assert process.stdout is not None and process.stderr is not None
        self._readers = [
            asyncio.create_task(collect(process.stdout, self.stdout, "stdout", sink)),
            asyncio.create_task(collect(process.stderr, self.stderr, "stderr", sink)),
        ]
        self._closed = False

    @property
    def pid(self) -> int:
        """The process id, which is also its process group id."""
        return self._process.pid

    async def finish(self, deadline: float, abort: asyncio.Event, grace: float) -> Ending:
        """Wait until the process exits, `deadline` (loop time) passes or `abort` is set;
        in the last two cases TERM the group, then KILL it after `grace` seconds."""
        ending = await self._await_exit(deadline, abort)
        if not isinstance(ending, Exited):
            await self._terminate(grace)
        await self.close()
        return ending

    async def _await_exit(self, deadline: float, abort: asyncio.Event) -> Ending:
        exited = asyncio.ensure_future(self._process.wait())
        aborted = asyncio.ensure_future(abort.wait())
        remaining = max(deadline - asyncio.get_running_loop().time(), 0.0)
        try:
            await asyncio.wait({exited, aborted}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
            aborted.cancel()
            await asyncio.gather(exited, aborted, return_exceptions=True)
        if self._process.returncode is not None:
            return _exited(self._process.returncode)
        return Aborted() if abort.is_set() else TimedOut()

    async def _terminate(self, grace: float) -> None:
        _signal_group(self.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self._process.wait(), grace)
        except TimeoutError:
            _signal_group(self.pid, signal.SIGKILL)
            await self._process.wait()

    async def close(self) -> None:
        """Kill whatever is left of the group, reap the process and finish reading
        its output. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        _signal_group(self.pid, signal.SIGKILL)
        await self._process.wait()
        _, pending = await asyncio.wait(self._readers, timeout=READER_GRACE)
        for reader in pending:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)

    async def __aenter__(self) -> Running:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
