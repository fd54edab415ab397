"""Choosing how this executor starts its jobs, from its configuration."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from .config import ExecutorConfig
from .containers import ContainerLauncher
from .noop import NoopRunning, launch_noop
from .process import Launch, NotRunnable, Running, launch

log = structlog.get_logger("jetjobs.executor")

Launcher = Callable[[Launch], Awaitable[Running | NoopRunning | NotRunnable]]


def launcher_for(config: ExecutorConfig) -> Launcher:
    """Native processes, containers of one engine, or (benchmarks) nothing at all."""
    match config.runner:
        case "podman" | "docker":
            launcher = ContainerLauncher(config.runner, config.runner_id, config.container_engine)
            missing = launcher.missing()
            if missing is not None:  # jobs will fail with this reason: say so at once too
                log.warning("executor.no_container_engine", reason=missing)
            return launcher
        case "noop":
            return launch_noop
        case _:
            return launch
