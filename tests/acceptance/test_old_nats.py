"""A nats-server older than jetjobs needs is refused at connect, in one line,
by commands and services alike (on 2.9, redelivery and dead letters misbehave
without any error). Runs against a real older server when the machine has one
(Debian's `nats-server` package is 2.9)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bus.connection import OLDEST_NATS
from jetjobs import embedded
from jetjobs.embedded import free_port
from tests.acceptance.cli import clean_env, jetjobs
from tests.acceptance.test_cli import one_line_error

PLACES = ("/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server")


def older_server() -> tuple[str, str] | None:
    """(binary, version) of a nats-server on this machine older than jetjobs needs."""
    for place in (*PLACES, shutil.which("nats-server") or ""):
        if not place or not Path(place).is_file():
            continue
        version = embedded._nats_version(Path(place))
        if version is not None and version < OLDEST_NATS:
            return place, ".".join(map(str, version))
    return None


@pytest.fixture
async def old_nats(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """The URL and version of an older nats-server with JetStream, started here, killed by pid."""
    found = older_server()
    if found is None:
        pytest.skip("no nats-server older than jetjobs needs on this machine (Debian's package is one)")
    binary, version = found
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *[binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path / "js")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(10):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                break
        yield f"nats://127.0.0.1:{port}", version
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()


async def test_commands_and_services_refuse_an_older_nats(old_nats: tuple[str, str]) -> None:
    url, version = old_nats
    wanted = ".".join(map(str, OLDEST_NATS))
    expected = f"NATS at {url} is nats-server {version}, and jetjobs needs {wanted} or newer"
    env = clean_env(JETJOBS_NATS_URL=url, JETJOBS_METRICS_PORT="0")
    one_line_error(await jetjobs("company", "list", env=env, timeout=30), expected)
    one_line_error(await jetjobs("executor", env=env, timeout=30), expected)
