"""What a job's process sees: a small environment and a private working directory."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from contracts.messages import JobMessage

INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
"""The only variables a job inherits from its executor: enough to find programs
and format text, and nothing that leaks the executor's own credentials."""


def job_env(own: Mapping[str, str], message: JobMessage, attempt: int) -> dict[str, str]:
    """The executor's basics, then the message's env, then the job's identity
    (last, so a job can always rely on them to be idempotent)."""
    env = {name: own[name] for name in INHERITED if name in own}
    env.setdefault("PATH", os.defpath)
    env.update(message.env)
    env.update(
        JETJOBS_JOB_ID=message.job_id,
        JETJOBS_ATTEMPT=str(attempt),
        JETJOBS_COMPANY=message.company,
    )
    return env


@asynccontextmanager
async def workdir(job_id: str) -> AsyncIterator[str]:
    """A fresh empty directory for one attempt, removed with everything in it afterwards.

    Creating it and removing it while still empty are single quick system calls,
    made inline: a thread hop for each would cost more than the call. Only a tree
    the job left behind is removed in a thread."""
    path = tempfile.mkdtemp(prefix=f"jetjobs-{job_id}-")
    try:
        yield path
    finally:
        try:
            os.rmdir(path)
        except OSError:
            await asyncio.to_thread(shutil.rmtree, path, True)
