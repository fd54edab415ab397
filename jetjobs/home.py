"""What `jetjobs up` keeps in its home beside the servers' data: the lock that makes it
the only `up` there, and the key of its embedded database's credentials."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from store.credentials import new_key

from .settings import ENDPOINTS_FILE, LOCK_FILE, SettingsError

SECRET_KEY_FILE = "secret.key"
_HOLDER_WAIT = 1.0
"""Seconds to wait for the holder's pid: it writes it just after taking the lock."""
_PROBE_WAIT = 0.5
"""Seconds to retry a held lock: a client command looking whether `up` runs holds it
shared for an instant (`settings`), and must not pass for another `up`."""


@contextlib.contextmanager
def lock_home(home: Path) -> Iterator[None]:
    """Hold an exclusive lock on `home` for the block, so two `jetjobs up` never run
    servers on the same data. The kernel drops the lock when the holder ends, however
    it ends (SIGKILL too), so a lock that can be taken is the proof that no `up` runs:
    an `endpoints.json` left behind is stale whatever pid it names, and goes."""
    path = home / LOCK_FILE
    try:
        lock = path.open("a+")  # never truncated before it is held: the holder's pid stays readable
    except OSError as error:
        raise SettingsError(
            f"cannot open {path}: {error.strerror}; check the permissions of --home"
        ) from None
    with lock:
        if not _locked(lock):
            raise SettingsError(
                f"jetjobs up is already running for {home}{_holder(path)}; stop it or use another --home"
            )
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        (home / ENDPOINTS_FILE).unlink(missing_ok=True)
        yield


def _locked(lock: IO[str]) -> bool:
    """Whether the exclusive lock was taken, trying again for _PROBE_WAIT seconds."""
    deadline = time.monotonic() + _PROBE_WAIT
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        else:
            return True


def _holder(path: Path) -> str:
    """` (pid N)` of the `up` holding the lock, or nothing if it does not say in time."""
    deadline = time.monotonic() + _HOLDER_WAIT
    while True:
        with contextlib.suppress(OSError, ValueError):
            return f" (pid {int(path.read_text())})"
        if time.monotonic() > deadline:
            return ""
        time.sleep(0.05)


def home_key(home: Path) -> Path:
    """The key that encrypts the credentials of the embedded database, kept beside it
    (made on first use, readable by this user only), so credentials work from the
    first `jetjobs up`; a key of your own (JETJOBS_SECRET_KEY_FILE) replaces it."""
    path = home / SECRET_KEY_FILE
    with contextlib.suppress(FileExistsError):
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as key_file:
            key_file.write(new_key() + "\n")
    return path


def found_key(home: Path) -> Path | None:
    """The key `jetjobs up` made in `home`, if it made one: what commands run beside
    it use when no key is configured, as they use its database."""
    path = home / SECRET_KEY_FILE
    return path if path.is_file() else None
