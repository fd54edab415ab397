"""The `jetjobs` command's entry point, kept light: Ctrl-C while the command is still
loading (the CLI's imports take a noticeable fraction of a second) ends it as quietly
as it does later, with status 130 and no traceback."""

from __future__ import annotations

import signal
import sys
from types import FrameType

INTERRUPTED = 130


def _quit(signum: int, frame: FrameType | None) -> None:
    sys.exit(INTERRUPTED)


signal.signal(signal.SIGINT, _quit)  # until the CLI is loaded, which handles Ctrl-C itself


def main() -> int:
    try:
        from .cli import main as run
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return run()
    except KeyboardInterrupt:
        return INTERRUPTED
