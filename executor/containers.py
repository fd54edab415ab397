"""Running a job in a container: the application's OCI image under podman or
docker, with the job's environment and working directory, and the lifecycle
of a native run (output, timeout, cancel, exit codes).

The engine's client is the job's process: its output is the container's and
its exit status is the command's. A timeout or cancel stops the container
itself, by a name derived from the job id, because killing only the client
would leave the container running. Values of the environment travel in a file
only this user can read, outside the mounted working directory, never on a
command line."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from .process import Ending, Exited, Launch, NotRunnable, Running, Spawned, spawn

EngineKind = Literal["podman", "docker"]
ENGINES: tuple[EngineKind, ...] = ("podman", "docker")

PROBE_TIMEOUT = 20.0
"""Seconds `engine version` may take before the engine counts as unusable."""
ENGINE_MARGIN = 15.0
"""Seconds beyond the kill grace an engine command (stop, rm) may take."""
HOST_ONLY = ("PATH", "HOME", "TMPDIR")
"""The executor's own values of these describe its host, not the image: not passed in."""


def container_name(job_id: str, attempt: str) -> str:
    """One container per attempt, named so any operator (or this executor) can stop it."""
    return f"jetjobs-{job_id}-{attempt}"


def container_env(env: Mapping[str, str], host: Mapping[str, str]) -> dict[str, str]:
    """The job's variables for the container: all of them, except host paths the
    executor passed on as they were (the image has its own PATH and HOME)."""
    return {
        name: value
        for name, value in env.items()
        if not (name in HOST_ONLY and value in (host.get(name), os.defpath))
    }


def env_file_lines(env: Mapping[str, str]) -> tuple[str, list[str]]:
    """The `--env-file` text, and the names whose values have a line break (an
    env file cannot hold them: they go as `--env NAME` with the value in the
    engine's own environment)."""
    lines = [f"{name}={value}\n" for name, value in env.items() if "\n" not in value]
    inline = [name for name, value in env.items() if "\n" in value]
    return "".join(lines), inline


def write_private(directory: str, name: str, text: str) -> str:
    """A file only this user may read or write (mode 0600), created fresh."""
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


@dataclass(frozen=True)
class Engine:
    """One container engine binary and the command lines jetjobs gives it."""

    kind: EngineKind
    path: str

    def run(self, spec: Launch, name: str, env_file: str, inline: Sequence[str]) -> list[str]:
        """`run` in the foreground, removed at exit, the working directory mounted at
        the same path (so JETJOBS_RESULT_FILE and artifacts work unchanged)."""
        argv = [self.path, "run", "--rm", "--name", name, "--label", f"jetjobs.job={spec.job_id}"]
        if self.kind == "docker":  # rootful daemon: write the job's files as the executor's user
            argv += ["--user", f"{os.getuid()}:{os.getgid()}"]
        argv += ["--volume", f"{spec.cwd}:{spec.cwd}", "--workdir", spec.cwd, "--env-file", env_file]
        for variable in inline:
            argv += ["--env", variable]
        return [*argv, spec.image, *spec.argv]

    def stop(self, name: str, grace: float) -> list[str]:
        """TERM the container's main process, KILL it after `grace` seconds."""
        return [self.path, "stop", "--time", str(max(math.ceil(grace), 0)), name]

    def remove(self, *names: str) -> list[str]:
        """Kill and remove the containers, whatever state they are in."""
        return [self.path, "rm", "--force", *names]

    def version(self) -> list[str]:
        """A command that works only when the engine can run containers."""
        return [self.path, "version"]


async def engine_call(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> tuple[int, str]:
    """Run an engine command to its end; its exit status and first line of error."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env),
            start_new_session=True,
        )
    except OSError as error:
        return 127, error.strerror or str(error)
    try:
        _, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        return -1, f"no answer within {timeout:g} s"
    lines = [line.strip() for line in err.decode(errors="replace").splitlines() if line.strip()]
    return process.returncode or 0, lines[-1] if lines else ""


class ContainerRunning(Running):
    """The engine client of one container: finishing it stops the container too."""

    def __init__(
        self,
        spawned: Spawned,
        spec: Launch,
        engine: Engine,
        name: str,
        private: str,
        engine_env: Mapping[str, str],
    ) -> None:
        super().__init__(spawned, spec.output_limit, spec.on_output)
        self.engine = engine
        self.name = name
        self._private = private
        self._engine_env = engine_env
        self._clean = False
        self._removed = False

    async def finish(self, deadline: float, abort: asyncio.Event, grace: float) -> Ending:
        """As a native run; on timeout or abort the container is stopped by name
        (TERM, KILL after `grace`) and removed, then the client is reaped."""
        ending = await self._await_exit(deadline, abort)
        self._clean = isinstance(ending, Exited) and ending.signal is None
        if not isinstance(ending, Exited):
            await engine_call(self.engine.stop(self.name, grace), self._engine_env, grace + ENGINE_MARGIN)
            await self._remove()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wait(), grace)
        await self.close()
        return ending

    async def _remove(self) -> None:
        if not self._removed:
            self._removed = True
            await engine_call(self.engine.remove(self.name), self._engine_env, ENGINE_MARGIN)

    async def close(self) -> None:
        """Remove the container unless it ended by itself (then `--rm` did),
        reap the client and delete the private env file."""
        try:
            if not self._clean:
                await self._remove()
            await super().close()
        finally:
            shutil.rmtree(self._private, ignore_errors=True)


class ContainerLauncher:
    """Starts jobs as containers with one engine; the stand-in for `process.launch`."""

    def __init__(
        self, kind: EngineKind, runner: str, engine: str | None = None, host: Mapping[str, str] | None = None
    ) -> None:
        self.kind = kind
        self._binary = engine or kind
        self._runner = runner
        self._host = dict(os.environ if host is None else host)
        self._usable = False

    def _engine(self) -> Engine | NotRunnable:
        path = shutil.which(self._binary, path=self._host.get("PATH"))
        if path is None:
            where = "at" if "/" in self._binary else "on PATH of"
            return NotRunnable(
                f"container engine {self._binary!r} not found {where} runner {self._runner}: "
                f"install {self.kind} there, or give its path with --container-engine"
            )
        return Engine(self.kind, path)

    async def _remove_earlier(self, engine: Engine, job_id: str, attempt: int) -> None:
        """A later attempt means an earlier one was lost, maybe with an executor killed
        on this host whose container still runs: stop it before running the job again."""
        earlier = [container_name(job_id, str(n)) for n in range(max(attempt - 5, 1), attempt)]
        await engine_call(engine.remove(*earlier), self._host, ENGINE_MARGIN)

    def missing(self) -> str | None:
        """Why no engine binary can be found, or None when one can."""
        engine = self._engine()
        return engine.reason if isinstance(engine, NotRunnable) else None

    async def _probe(self, engine: Engine) -> NotRunnable | None:
        """Whether the engine can run containers (e.g. docker's daemon answers); once
        it could, it is not asked again."""
        if self._usable:
            return None
        code, error = await engine_call(engine.version(), self._host, PROBE_TIMEOUT)
        if code != 0:
            return NotRunnable(
                f"container engine {engine.path} on runner {self._runner} cannot run containers "
                f"({error or f'exit status {code}'}): start its service (e.g. the docker daemon) "
                f"or fix its configuration"
            )
        self._usable = True
        return None

    async def __call__(self, spec: Launch) -> ContainerRunning | NotRunnable:
        if not spec.image:
            return NotRunnable(
                "the application has no OCI image: set `ociimage` in its app JSON, "
                f"or run it on a pool whose executors use the process runner (runner {self._runner})"
            )
        engine = self._engine()
        if isinstance(engine, NotRunnable):
            return engine
        unusable = await self._probe(engine)
        if unusable is not None:
            return unusable
        return await self._start(engine, spec)

    async def _start(self, engine: Engine, spec: Launch) -> ContainerRunning | NotRunnable:
        attempt = int(spec.env.get("JETJOBS_ATTEMPT", "1"))
        if attempt > 1:
            await self._remove_earlier(engine, spec.job_id, attempt)
        name = container_name(spec.job_id, str(attempt))
        env = container_env(spec.env, self._host)
        text, inline = env_file_lines(env)
        private = tempfile.mkdtemp(prefix=f"jetjobs-engine-{spec.job_id}-")
        env_file = write_private(private, "env", text)
        client_env = {**self._host, **{variable: env[variable] for variable in inline}}
        argv = engine.run(spec, name, env_file, inline)
        spawned = spawn(replace(spec, argv=argv, env=client_env))
        if isinstance(spawned, NotRunnable):
            shutil.rmtree(private, ignore_errors=True)
            return spawned
        return ContainerRunning(spawned, spec, engine, name, private, self._host)
