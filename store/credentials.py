"""Credential values encrypted at rest: AES-256-GCM under keys the operator gives.

Keys are 32 random bytes, base64-encoded, one per line of the key file (or the
single value of JETJOBS_SECRET_KEY). The first key encrypts; every key
decrypts, so a key can be rotated in without downtime: add the new key first,
run `jetjobs credentials rotate-key`, then drop the old. Running stores follow
the key file without a restart (see `Keyring`)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12

log = structlog.get_logger("jetjobs.store")


class SecretKeyError(ValueError):
    """A secret key is missing or malformed; the message says how to give a good one."""


class UndecryptableError(Exception):
    """A stored credential, template secret or job secret cannot be opened with any configured key."""


@dataclass(frozen=True)
class Sealed:
    """Sealed values as stored (a credential set's, or one template or job secret's): which
    key, the nonce, the ciphertext."""

    key_id: str
    nonce: bytes
    ciphertext: bytes


def key_id(key: bytes) -> str:
    """A short public name of a key, stored next to what it encrypted."""
    return hashlib.sha256(b"jetjobs-key-id:" + key).hexdigest()[:16]


def new_key() -> str:
    """A fresh key in the form a key file holds."""
    return base64.b64encode(os.urandom(32)).decode()


def parse_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise SecretKeyError(
            f"{where}: a secret key is 32 random bytes in base64 "
            "(make one with `jetjobs credentials new-key`)"
        )
    return key


def no_key(what: str) -> str:
    """Why a store without a key refuses to keep `what`, and how to give it one."""
    return (
        f"the store has no secret key, so it cannot keep {what}: make one with "
        "`jetjobs credentials new-key > FILE` and start the store with JETJOBS_SECRET_KEY_FILE=FILE"
    )


def _aad(company: str, name: str) -> bytes:
    """Binds a ciphertext to its company and set name: a row copied elsewhere will not open."""
    return f"jetjobs-credential\0{company}\0{name}".encode()


def _template_aad(template_id: int, name: str) -> bytes:
    """Binds a template's secret value to the template and field: moved elsewhere, it will not open."""
    return f"jetjobs-template-secret\0{template_id}\0{name}".encode()


def _job_aad(job_id: str, name: str) -> bytes:
    """Binds a run's secret value to the job and field: moved elsewhere, it will not open."""
    return f"jetjobs-job-secret\0{job_id}\0{name}".encode()


class Keyring:
    """The operator's keys: the first encrypts, all decrypt. Keys from a key file
    follow the file: a changed file is read again before sealing, and when a
    stored credential names a key the ring does not hold."""

    def __init__(self, keys: Sequence[bytes], source: KeyFile | None = None) -> None:
        self._use(keys)
        self._source = source
        self._unusable = False
        """The key file changed and could not be read again: the keys held are older than it."""

    def _use(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise SecretKeyError("no secret key given")
        self._keys = {key_id(k): AESGCM(k) for k in keys}
        self.primary = key_id(keys[0])

    @classmethod
    def load(cls, key: str | None, key_file: str | None) -> Keyring | None:
        """From JETJOBS_SECRET_KEY and/or JETJOBS_SECRET_KEY_FILE; None when neither is set."""
        given = [parse_key(key, "JETJOBS_SECRET_KEY")] if key else []
        if not key_file:
            return cls(given) if given else None
        source = KeyFile(Path(key_file), given)
        return cls(source.read(), source)

    def refresh(self) -> None:
        """Take up a key file changed since it was read (a rotation): one stat when it has not.
        A file that became unreadable or invalid leaves the keys held as they are."""
        if self._source is None:
            return
        try:
            keys = self._source.reread()
        except SecretKeyError as error:
            self._unusable = True
            log.warning("credentials.key_file_unusable", error=str(error), keys_kept=len(self._keys))
            return
        if keys is not None:
            self._use(keys)
            self._unusable = False
            log.info(
                "credentials.key_file_read", path=str(self._source.path), keys=len(keys), primary=self.primary
            )

    def _missing(self, what: str, key: str) -> str:
        """Why a sealed value cannot be opened; callers may be executors, so no file path."""
        text = (
            f"{what} is encrypted with key {key}, which is not configured: "
            "add that key to JETJOBS_SECRET_KEY_FILE"
        )
        return f"{text} (the store cannot read that file now: see its log)" if self._unusable else text

    def holds(self, key: str) -> bool:
        """Whether the key named `key` (a `key_id`) is configured, reading a changed key file first."""
        if key not in self._keys:
            self.refresh()
        return key in self._keys

    def _seal(self, plain: bytes, aad: bytes) -> Sealed:
        self.refresh()
        nonce = os.urandom(NONCE_BYTES)
        return Sealed(self.primary, nonce, self._keys[self.primary].encrypt(nonce, plain, aad))

    def _open(self, sealed: Sealed, aad: bytes, what: str) -> bytes:
        if sealed.key_id not in self._keys:
            self.refresh()
        aead = self._keys.get(sealed.key_id)
        if aead is None:
            raise UndecryptableError(self._missing(what, sealed.key_id))
        try:
            return aead.decrypt(sealed.nonce, sealed.ciphertext, aad)
        except InvalidTag:
            raise UndecryptableError(f"{what} failed its integrity check") from None

    def seal(self, company: str, name: str, values: Mapping[str, str]) -> Sealed:
        plain = json.dumps(dict(values), sort_keys=True).encode()
        return self._seal(plain, _aad(company, name))

    def open(self, company: str, name: str, sealed: Sealed) -> dict[str, str]:
        plain = self._open(sealed, _aad(company, name), f"credential {company}/{name}")
        values: dict[str, str] = json.loads(plain)
        return values

    def seal_field(self, template_id: int, name: str, value: str) -> Sealed:
        """A template's value of one secret field, sealed for that template and field alone."""
        return self._seal(value.encode(), _template_aad(template_id, name))

    def open_field(self, template_id: int, name: str, sealed: Sealed) -> str:
        what = f"the value of secret field {name} of template {template_id}"
        return self._open(sealed, _template_aad(template_id, name), what).decode()

    def seal_job_field(self, job_id: str, name: str, value: str) -> Sealed:
        """A run's value of one secret field, sealed for that job and field alone."""
        return self._seal(value.encode(), _job_aad(job_id, name))

    def open_job_field(self, job_id: str, name: str, sealed: Sealed) -> str:
        what = f"the value of secret field {name} of job {job_id}"
        return self._open(sealed, _job_aad(job_id, name), what).decode()


def read_key_file(path: Path) -> list[bytes]:
    """Keys of a key file, one per line (blank lines and `#` comments ignored)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise SecretKeyError(f"cannot read secret key file {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise SecretKeyError(
            f"secret key file {path} is not text: it holds base64 keys, one per line "
            "(make one with `jetjobs credentials new-key`)"
        ) from None
    keys = [
        parse_key(line, f"{path} line {n}")
        for n, line in enumerate(lines, start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not keys:
        raise SecretKeyError(f"secret key file {path} holds no key")
    return keys


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    """What changes when a file is written, replaced or has its mode changed; None when it is gone."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class KeyFile:
    """A key file as last read, so a running store notices when it changes."""

    def __init__(self, path: Path, given: Sequence[bytes] = ()) -> None:
        self.path = path
        self._given = list(given)
        self._seen: tuple[int, int, int, int] | None = None

    def read(self) -> list[bytes]:
        """The given key (JETJOBS_SECRET_KEY) first, then the file's; SecretKeyError if unusable."""
        self._seen = _signature(self.path)  # before reading: a write in between is read next time
        return [*self._given, *read_key_file(self.path)]

    def reread(self) -> list[bytes] | None:
        """The keys if the file changed since it was last read, None if it did not (one stat).
        A file found unusable is not read again until it changes once more."""
        return None if _signature(self.path) == self._seen else self.read()
