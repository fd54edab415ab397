"""Running one job's command as a process group: start, wait, time out, kill.

Commands are argv lists handed to exec, never to a shell. Each job gets its
own session and process group: a timeout, cancel or shutdown signals that
group (SIGTERM, then SIGKILL after the grace), and the group is killed once the
job's process has ended. A process that left the group (a job-control shell,
`setsid`, a daemon) is not reached from here: once the attempt ends, its
working directory kills whatever still works in it or in the job's session
before serving again (`workdirs`); only a process that left both the job's
session and its directory outlives the job.

The process is started with `posix_spawn` (`spawning`), or `subprocess.Popen`
where exec must search PATH, and watched through the event loop directly:
callbacks on its pidfd and output pipes (`poller`) complete two futures, reaped
and output read to its end, that `finish` and `close` wait on.
asyncio's subprocess transports, or a task per pipe and per wait, cost about as
much again as the spawn itself."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

from contracts.base import env_refusal

from . import spawning
from .executables import Executables
from .output import Capture, Pipe, Sink
from .poller import poller
from .spawning import Process
from .waiting import first

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
    refusal = env_refusal(spec.env) if isinstance(error, ValueError) else None
    detail = refusal or (error.strerror if isinstance(error, OSError) and error.strerror else str(error))
    return f"cannot start {name!r} on runner {spec.runner}: {detail}"


EXECUTABLES = Executables()
"""The places of the commands this executor runs (one table per process)."""


def _popen(spec: Launch, stdout: int, stderr: int, executable: str | None) -> subprocess.Popen[bytes]:
    """Fork and exec, inline: it returns as soon as the command runs (vfork), and a
    thread hop would cost more than it saves (the vfork holds the GIL). `executable`
    is the file to run, when known already; the command's own argv[0] is kept either way."""
    return subprocess.Popen(
        list(spec.argv),
        executable=executable,
        stdin=spawning.devnull(),
        stdout=stdout,
        stderr=stderr,
        cwd=spec.cwd,
        env=spec.env,
        start_new_session=True,
    )


@dataclass(frozen=True)
class Spawned:
    """A process just started in its own session, with the read ends of its output pipes."""

    process: Process
    stdout: int
    stderr: int


def spawn(spec: Launch, executables: Executables = EXECUTABLES) -> Spawned | NotRunnable:
    """Start `spec.argv` in its own session with output piped, or say why it cannot start."""
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    try:
        process = _start(spec, out_write, err_write, executables)
    except (OSError, ValueError) as error:
        os.close(out_read)
        os.close(err_read)
        return NotRunnable(_why_not(spec, error))
    finally:
        os.close(out_write)
        os.close(err_write)
    return Spawned(process, out_read, err_read)


def _start(spec: Launch, stdout: int, stderr: int, executables: Executables) -> Process:
    """Started by `spawning.start` from the command's file, named or known; where
    that fails (the file was moved, say), once more through Popen, so errors and
    fallbacks are exec's own."""
    name, search = (spec.argv[0] if spec.argv else ""), spec.env.get("PATH", os.defpath)
    place = name if "/" in name else executables.place(name, search)
    if place is None or not spawning.USABLE:
        return _popen(spec, stdout, stderr, place)
    try:
        return spawning.start(place, spec.argv, spec.env, spec.cwd, stdout, stderr)
    except OSError:
        executables.forget(name, search)
        return _popen(spec, stdout, stderr, None)


async def launch(spec: Launch) -> Running | NotRunnable:
    """Start the process with output captured, or say why it cannot start."""
    spawned = spawn(spec)
    if isinstance(spawned, NotRunnable):
        return spawned
    return Running(spawned, spec.output_limit, spec.on_output)


class Running:
    """A started process group whose output is being read as it is written.
    Takes over the read ends of its output pipes."""

    def __init__(self, spawned: Spawned, output_limit: int, sink: Sink | None = None) -> None:
        loop = asyncio.get_running_loop()
        self._process = spawned.process
        self.stdout = Capture(output_limit)
        self.stderr = Capture(output_limit)
        self._exit: asyncio.Future[int] = loop.create_future()
        self._drained: asyncio.Future[None] = loop.create_future()
        self._pipes = (
            Pipe(spawned.stdout, self.stdout, "stdout", sink, self._pipe_ended),
            Pipe(spawned.stderr, self.stderr, "stderr", sink, self._pipe_ended),
        )
        _watch_exit(self._process, self._reaped)
        self._closed = False

    def _reaped(self, code: int) -> None:
        for pipe in self._pipes:
            pipe.hurry()
        if not self._exit.done():
            self._exit.set_result(code)

    def _pipe_ended(self) -> None:
        if all(pipe.done for pipe in self._pipes) and not self._drained.done():
            self._drained.set_result(None)

    @property
    def pid(self) -> int:
        """The process id, which is also its process group id."""
        return self._process.pid

    async def wait(self) -> int:
        """The process's return code, once it has exited and been reaped."""
        return await asyncio.shield(self._exit)

    async def finish(self, deadline: float, abort: asyncio.Event, grace: float) -> Ending:
        """Wait until the process exits, `deadline` (loop time) passes or `abort` is set;
        in the last two cases TERM the group, then KILL it after `grace` seconds."""
        ending = await self._await_exit(deadline, abort)
        if not isinstance(ending, Exited):
            await self._terminate(grace)
        await self.close()
        return ending

    async def _await_exit(self, deadline: float, abort: asyncio.Event) -> Ending:
        await first(self._exit, deadline, abort)
        if self._exit.done():
            return _exited(self._exit.result())
        return Aborted() if abort.is_set() else TimedOut()

    async def _terminate(self, grace: float) -> None:
        _signal_group(self.pid, signal.SIGTERM)
        await first(self._exit, asyncio.get_running_loop().time() + grace)
        if not self._exit.done():
            _signal_group(self.pid, signal.SIGKILL)
            await self._exit

    async def close(self) -> None:
        """Kill whatever is left of the group, reap the process and finish reading
        its output. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        _signal_group(self.pid, signal.SIGKILL)
        await self._exit
        if not self._drained.done():
            await first(self._drained, asyncio.get_running_loop().time() + READER_GRACE)
            for pipe in self._pipes:
                await pipe.stop()

    async def __aenter__(self) -> Running:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def _watch_exit(process: Process, reaped: Callable[[int], None]) -> None:
    """Call `reaped` with the process's return code once it has been reaped: from its
    pidfd through the event loop, or where there is none, from a thread."""
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        waiting = asyncio.get_running_loop().run_in_executor(None, process.wait)
        waiting.add_done_callback(lambda done: reaped(done.result()))
        return
    watching = poller()

    def reap() -> None:
        watching.remove_reader(pidfd)
        os.close(pidfd)
        reaped(process.wait())

    watching.add_reader(pidfd, reap)
