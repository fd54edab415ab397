"""The `jetjobs` command's entry point, kept light: Ctrl-C while the command is still
loading (the CLI's imports take a noticeable fraction of a second) ends it as quietly
as it does later, with status 130 and no traceback."""

from __future__ import annotations


def main() -> int:
    try:
        from .cli import main as run

        return run()
    except KeyboardInterrupt:
        return 130
