"""Running the real `jetjobs` command in a subprocess."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any JETJOBS_* leaking in, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JETJOBS_")}
    return env | extra


async def jetjobs(*args: str, env: dict[str, str], timeout: float = 60.0) -> Result:
    """Run `python -m jetjobs ARGS` to completion."""
    process = await started(*args, env=env)
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


async def started(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    """`python -m jetjobs ARGS` started with its output piped, for a test to read as it
    runs (a follower) and to end itself."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jetjobs",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
