"""The executor process waits for its children through the event loop (pidfd) on
Python 3.11, and processes still start, exit and report their status."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from executor.watcher import pidfd_supported, use_pidfd_watcher

    async def main():
        used = use_pidfd_watcher()
        expected = sys.version_info < (3, 12) and pidfd_supported()
        assert used == expected, (used, expected)
        codes = []
        for argv in (["true"], ["false"]):
            process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
            await process.communicate()
            codes.append(process.returncode)
        print(codes)

    asyncio.run(main())
    """
)


def test_children_are_reaped_with_their_exit_codes() -> None:
    # A separate interpreter: the watcher is process-wide and must not leak into other tests.
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", SCRIPT], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0, 1]"
