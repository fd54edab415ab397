"""Servers and service processes for one benchmark run, all stopped by pid afterwards.

Services run in their own processes, as in production: on a small machine a
single process would measure the GIL, not the system."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from jetjobs.embedded import NatsServer, PostgresServer

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
PROFILE_ENV = "JETJOBS_BENCH_PROFILE"
"""When set to a folder, every service process is sampled by py-spy into it."""


@dataclass
class Servers:
    """One NATS and one PostgreSQL for a whole benchmark, in a temporary folder."""

    root: Path
    nats: NatsServer
    postgres: PostgresServer

    def fresh_database(self) -> str:
        """A new empty database's URL, so runs never see each other's rows."""
        name = f"bench_{secrets.token_hex(4)}"
        self.postgres.create_database(name)
        return self.postgres.dsn(name)

    def restart_nats(self) -> None:
        """A NATS with empty streams: stop it, wipe its storage, start it again."""
        self.nats.stop()
        store_dir = self.root / "nats" / "jetstream"
        subprocess.run(["rm", "-rf", str(store_dir)], check=True)
        self.nats = NatsServer.start(self.root / "nats")


@contextlib.contextmanager
def servers() -> Iterator[Servers]:
    """Start both servers; stop them whatever happens."""
    with tempfile.TemporaryDirectory(prefix="jetjobs-bench-") as tmp:
        root = Path(tmp)
        nats = NatsServer.start(root / "nats")
        try:
            postgres = PostgresServer.start(root / "pg" / "data", extra_settings={"max_connections": "100"})
        except BaseException:
            nats.stop()
            raise
        box = Servers(root, nats, postgres)
        try:
            yield box
        finally:
            box.nats.stop()
            box.postgres.stop()


def py_spy() -> str | None:
    """The py-spy executable: on PATH or beside this Python."""
    return shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


def profiling_refused() -> str | None:
    """Why profiling was asked for (`JETJOBS_BENCH_PROFILE`) but cannot happen."""
    if os.environ.get(PROFILE_ENV) and py_spy() is None:
        return f"{PROFILE_ENV} is set, but py-spy is not installed: `pip install py-spy`, or unset it"
    return None


class ServiceProcess:
    """A jetjobs service in a child process (`python -m bench.service`), stopped by pid."""

    def __init__(self, argv: list[str], log_path: Path, env: Mapping[str, str] | None = None) -> None:
        self.argv = argv
        self.log_path = log_path
        self.started_at = 0.0
        self._profiler: subprocess.Popen[bytes] | None = None
        self.ready_at = 0.0
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.service", *argv],
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        self.started_at = time.time()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _profile(self) -> None:
        """Attach py-spy (collapsed stacks, one file per service process) when asked to."""
        folder = os.environ.get(PROFILE_ENV)
        spy = py_spy()
        if not folder or spy is None:
            return
        path = Path(folder) / f"{self.log_path.stem}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        argv = [
            spy,
            "record",
            "--pid",
            str(self.pid),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(path),
        ]
        self._profiler = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _stop_profile(self) -> None:
        if self._profiler is not None and self._profiler.poll() is None:
            self._profiler.send_signal(signal.SIGINT)
            try:
                self._profiler.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._profiler.kill()
                self._profiler.wait()

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Block until the child prints `ready` (or fail with the tail of its log)."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line.strip() == b"ready":
                self.ready_at = time.time()
                self._profile()
                return
            if not line and self.process.poll() is not None:
                break
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"bench service {self.argv[0]} did not start:\n{tail}")

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        """TERM (the service drains and exits), KILL after a grace."""
        self._stop_profile()
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


def start_service(argv: list[str], log_path: Path, env: Mapping[str, str] | None = None) -> ServiceProcess:
    """Start a service process and wait until it is ready."""
    service = ServiceProcess(argv, log_path, env)
    try:
        service.wait_ready()
    except BaseException:
        service.stop()
        raise
    return service


@contextlib.contextmanager
def running(*specs: tuple[list[str], Path, Mapping[str, str] | None]) -> Iterator[list[ServiceProcess]]:
    """Start services in order (each ready before the next), stop them in reverse."""
    started: list[ServiceProcess] = []
    try:
        for argv, log_path, env in specs:
            started.append(start_service(argv, log_path, env))
        yield started
    finally:
        for service in reversed(started):
            service.stop()
