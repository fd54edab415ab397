"""Library log records (asyncpg's pool during an outage) come out as one jetjobs line."""

from __future__ import annotations

import json
import subprocess
import sys

EMIT = """
import logging
from jetjobs.logs import configure
configure(json=True)
try:
    raise ConnectionRefusedError(111, "Connect call failed")
except OSError:
    logging.getLogger("asyncpg.pool").warning("Failed to restore the pool connection floor; retrying", exc_info=True)
logging.getLogger("asyncpg.pool").info("not shown: below warning")
"""


def test_a_library_warning_is_one_line_with_the_error_and_no_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-c", EMIT], capture_output=True, text=True, timeout=60, check=True
    )
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    record = json.loads(lines[0])
    assert record["level"] == "warning" and record["logger"] == "asyncpg.pool"
    assert record["event"] == "Failed to restore the pool connection floor; retrying"
    assert record["error"] == "ConnectionRefusedError: [Errno 111] Connect call failed"
    assert "Traceback" not in done.stderr
