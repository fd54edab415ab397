"""The executor's settings: one frozen object, checked when it is built; and the errors
of starting an executor, which the CLI catches without importing the executor."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Literal

from pydantic import TypeAdapter, ValidationError

from contracts.base import Code

RUNNERS = ("process", "podman", "docker", "noop")


class ExecutorConfigError(ValueError):
    """An executor setting is out of range; the message says which and how to fix it."""


class ExecutorStartError(Exception):
    """The executor cannot start (its consumer out of reach, or its memory limit below
    what it already uses); the message says why and how to fix it."""


MEMORY_EXIT = 75
"""The exit status of an executor that stopped at its memory limit: EX_TEMPFAIL, a
failure for a supervisor (systemd's `Restart=on-failure`) to answer with a fresh one."""

MEMORY_HEADROOM_MB = 32
"""MiB an executor's memory limit must leave above what it uses when it starts, for the
jobs it runs: with less it would stop at its first jobs, and again after each restart."""

MEMORY_GROWTH_MB = 16
"""MiB the limit an executor advises leaves on top of that headroom: its size before
its first job differs by a MiB or two from one start to the next, and advice followed
to the MiB would be refused at the next start."""


def default_runner_id() -> str:
    """Host and pid: unique per live executor and readable in job history."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class ExecutorConfig:
    """What one executor process needs: where NATS is and how much it may run."""

    nats_url: str
    pool: str = "default"
    slots: int = 8
    runner_id: str = field(default_factory=default_runner_id)
    grace: float = 5.0
    output_limit: int = 256 * 1024
    live_output_limit: int = 16 * 1024 * 1024
    """Bytes of one attempt's output (both streams) published live to the logs stream,
    which every tenant shares; the outcome keeps `output_limit` of each stream either way."""
    drain_timeout: float = 30.0
    name: str = "jetjobs-executor"
    actor: str = "executor"
    """Who this executor is to the store API (a company lists it among its executors)."""
    api_token: str | None = None
    """Proves `actor` to a store that requires API tokens."""
    memory_limit_mb: int | None = None
    """Resident memory above which the executor stops pulling, drains and exits."""
    runner: Literal["process", "noop", "podman", "docker"] = "process"
    """How jobs run: `process` natively; `podman` or `docker` in the application's
    OCI image; `noop` runs nothing and reports success (for benchmarks only)."""
    container_engine: str | None = None
    """The engine binary for `podman`/`docker` runners (default: that name on PATH)."""
    company: str | None = None
    """Serve only this company's jobs, from its own consumer `exec_<pool>__<company>`
    (a per-company executor under NATS permissions, see deploy/nats/isolation.conf)."""
    bind_only: bool = False
    """Create nothing on the bus (streams, consumers): only bind to the consumer an
    operator created. For a NATS user without provisioning rights."""

    def __post_init__(self) -> None:
        self._check_codes()
        if self.slots < 1:
            raise ExecutorConfigError(f"slots must be at least 1 (got {self.slots})")
        if self.grace < 0 or self.drain_timeout < 0:
            raise ExecutorConfigError("grace and drain_timeout are seconds and cannot be negative")
        for name in ("output_limit", "live_output_limit"):
            if getattr(self, name) < 1:
                raise ExecutorConfigError(f"{name} must be at least 1 byte (got {getattr(self, name)})")
        if self.runner not in RUNNERS:
            raise ExecutorConfigError(f"runner must be one of {', '.join(RUNNERS)} (got {self.runner!r})")
        if self.memory_limit_mb is not None and self.memory_limit_mb < 16:
            raise ExecutorConfigError(
                f"memory_limit_mb must be at least 16 (got {self.memory_limit_mb}): leave it unset for no limit"
            )
        if not self.runner_id:
            raise ExecutorConfigError("runner_id cannot be empty: leave it unset for host-pid")

    def _check_codes(self) -> None:
        """The pool and company appear in subjects: NATS codes only."""
        try:
            TypeAdapter(Code).validate_python(self.pool)
        except ValidationError:
            raise ExecutorConfigError(
                f"pool {self.pool!r} is not a valid pool name: use lowercase letters, digits, '_' or '-'"
            ) from None
        if self.company is not None:
            try:
                TypeAdapter(Code).validate_python(self.company)
            except ValidationError:
                raise ExecutorConfigError(
                    f"company {self.company!r} is not a valid company code: use lowercase letters, digits, '_' or '-'"
                ) from None
