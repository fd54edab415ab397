"""Ctrl-C at any moment of a command once Python itself has started, the command's
imports included, ends it with status 130 and no traceback."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import Iterator

import pytest

from tests.acceptance.cli import clean_env

pytestmark = pytest.mark.timeout(60)

IMPORT_TIME = "import time:"
"""How `python -X importtime` starts each line it writes on stderr as an import ends."""


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that takes connections and never answers: a command waits on it until stopped."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.parametrize("after", [0.0, 0.05, 0.2])
async def test_ctrl_c_while_a_command_starts_is_quiet(after: float, silent_port: int) -> None:
    """The interrupt lands `after` seconds past the entry point's own import, while the
    command's modules load (on a busy machine, at a later point of its start)."""
    env = clean_env(JETJOBS_NATS_URL=f"nats://127.0.0.1:{silent_port}")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-X",
        "importtime",
        "-m",
        "jetjobs",
        "status",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    said: list[str] = []
    try:
        while not said or not said[-1].rstrip().endswith("| jetjobs.entry"):
            line = await asyncio.wait_for(process.stderr.readline(), 20)
            assert line, f"the entry point was never imported:\n{''.join(said)}"
            said.append(line.decode())
        await asyncio.sleep(after)
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    rest = [line for line in err.decode().splitlines() if not line.startswith(IMPORT_TIME)]
    assert (process.returncode, out.decode(), rest) == (130, "", [])
