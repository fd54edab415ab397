"""Where a command named without a directory lives on its PATH, looked up once in a while.

Given a bare name, `subprocess.Popen` joins it with every PATH entry in the
executor for every spawn, and its child tries `execve` on each until one
works: on a long PATH that is a dozen failed calls made while the executor's
event loop waits for the child to exec. Like a shell's command hash, the place
found is kept and used for a few seconds. A command that stops working at its
kept place is looked up again the usual way (`spawn` retries without it), and
a PATH with relative entries is never cached: those depend on the job's
working directory."""

from __future__ import annotations

import os
import shutil
import time

FRESH_FOR = 5.0
"""Seconds a place found is used before it is looked up again (a command
installed earlier on PATH meanwhile is found after at most this long)."""

KEPT = 256
"""Most (name, PATH) pairs kept; beyond, the table starts over."""


class Executables:
    """The absolute places of commands named without a directory."""

    def __init__(self, fresh_for: float = FRESH_FOR) -> None:
        self._fresh_for = fresh_for
        self._found: dict[tuple[str, str], tuple[str, float]] = {}

    def place(self, name: str, search: str) -> str | None:
        """The file `name` runs from with PATH `search`, or None to let exec search
        (a name with a directory, a PATH with relative entries, or nothing found)."""
        if "/" in name or not name:
            return None
        key = (name, search)
        now = time.monotonic()
        kept = self._found.get(key)
        if kept is not None and kept[1] > now:
            return kept[0]
        if not all(os.path.isabs(entry) for entry in search.split(os.pathsep)):
            return None
        found = shutil.which(name, path=search)
        if found is None:
            return None
        if len(self._found) >= KEPT:
            self._found.clear()
        self._found[key] = (found, now + self._fresh_for)
        return found

    def forget(self, name: str, search: str) -> None:
        """Drop a place that did not work, so the next spawn looks again."""
        self._found.pop((name, search), None)
