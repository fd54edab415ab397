"""Starting a job's process with `os.posix_spawn` once its file is known.

`subprocess.Popen` runs about 60 µs of Python around its `vfork` for each
process, all of it on the executor's event loop; with a process per job, the
loop is what limits the executor. `posix_spawn` makes the same `vfork` from C.
Popen stays for a command whose file exec itself must still find on the job's
PATH, so that search and its errors are exec's own.

The job gets what Popen would give it:
- its own session, stdin from /dev/null, stdout and stderr on their pipes;
- SIGPIPE and SIGXFSZ at their defaults: Python ignores both, and an ignored
  signal stays ignored across exec (a pipeline such as `yes | head` would
  never end);
- no other descriptor: Python opens every descriptor close-on-exec, and those
  the executor was started with are made so before its first spawn;
- its working directory. Python's `posix_spawn` has no action for that, so the
  executor moves into the directory for the call and back at once: no other
  code on the event loop runs meanwhile, and the executor's threads use only
  absolute paths."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Protocol

USABLE = sys.platform == "linux" and hasattr(os, "posix_spawn") and hasattr(os, "POSIX_SPAWN_DUP2")
"""Where the descriptors can be listed and the session set by `posix_spawn`;
elsewhere every job starts through Popen."""

DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)
"""What Popen's `restore_signals` gives back to the child: Python ignores them."""


class Process(Protocol):
    """A started process: what `subprocess.Popen` and `Child` share."""

    @property
    def pid(self) -> int: ...

    def wait(self) -> int: ...


class Child:
    """A process started by `start`, reaped by `wait` (once it has exited, as its
    pidfd says, the call returns at once)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._code: int | None = None

    def wait(self) -> int:
        """Its return code as Popen gives it: the exit status, or -N when signal N ended it."""
        if self._code is None:
            _, status = os.waitpid(self.pid, 0)
            self._code = os.waitstatus_to_exitcode(status)
        return self._code


@functools.cache
def devnull() -> int:
    """/dev/null, opened once for the stdin of every job."""
    return os.open(os.devnull, os.O_RDWR)


@functools.cache
def _home() -> int:
    """The executor's own working directory, to come back to after each spawn; the
    descriptors it was started with are made close-on-exec first, once."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            with contextlib.suppress(OSError):
                os.set_inheritable(fd, False)
    return os.open(".", os.O_PATH | os.O_DIRECTORY)  # no read permission needed to come back


def start(
    executable: str, argv: Sequence[str], env: Mapping[str, str], cwd: str, stdout: int, stderr: int
) -> Child:
    """Run `executable` (a path, absolute or relative to `cwd`) with `argv` in a new
    session in `cwd`; raises OSError as exec or chdir would."""
    home = _home()
    os.chdir(cwd)
    try:
        pid = os.posix_spawn(
            executable,
            list(argv),
            env,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, devnull(), 0),
                (os.POSIX_SPAWN_DUP2, stdout, 1),
                (os.POSIX_SPAWN_DUP2, stderr, 2),
            ],
            setsid=True,
            setsigdef=DEFAULT_SIGNALS,
        )
    finally:
        os.fchdir(home)
    return Child(pid)
