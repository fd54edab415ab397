"""Credential values encrypted at rest: AES-256-GCM under keys the operator gives.

Keys are 32 random bytes, base64-encoded, one per line of the key file (or the
single value of JETJOBS_SECRET_KEY). The first key encrypts; every key
decrypts, so a key can be rotated in without downtime: add the new key first,
restart the stores, run `jetjobs credentials rotate-key`, then drop the old."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class SecretKeyError(ValueError):
    """A secret key is missing or malformed; the message says how to give a good one."""


class UndecryptableError(Exception):
    """A stored credential cannot be opened with any configured key."""


@dataclass(frozen=True)
class Sealed:
    """One credential set's values as stored: which key, the nonce, the ciphertext."""

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


def _aad(company: str, name: str) -> bytes:
    """Binds a ciphertext to its company and set name: a row copied elsewhere will not open."""
    return f"jetjobs-credential\0{company}\0{name}".encode()


class Keyring:
    """The operator's keys: the first encrypts, all decrypt."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise SecretKeyError("no secret key given")
        self._keys = {key_id(k): AESGCM(k) for k in keys}
        self.primary = key_id(keys[0])

    @classmethod
    def load(cls, key: str | None, key_file: str | None) -> Keyring | None:
        """From JETJOBS_SECRET_KEY and/or JETJOBS_SECRET_KEY_FILE; None when neither is set."""
        keys: list[bytes] = []
        if key:
            keys.append(parse_key(key, "JETJOBS_SECRET_KEY"))
        if key_file:
            keys.extend(read_key_file(Path(key_file)))
        return cls(keys) if keys else None

    def seal(self, company: str, name: str, values: Mapping[str, str]) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps(dict(values), sort_keys=True).encode()
        ciphertext = self._keys[self.primary].encrypt(nonce, plain, _aad(company, name))
        return Sealed(self.primary, nonce, ciphertext)

    def open(self, company: str, name: str, sealed: Sealed) -> dict[str, str]:
        aead = self._keys.get(sealed.key_id)
        if aead is None:
            raise UndecryptableError(
                f"credential {company}/{name} is encrypted with key {sealed.key_id}, which is not configured: "
                "add that key to JETJOBS_SECRET_KEY_FILE"
            )
        try:
            plain = aead.decrypt(sealed.nonce, sealed.ciphertext, _aad(company, name))
        except InvalidTag:
            raise UndecryptableError(f"credential {company}/{name} failed its integrity check") from None
        values: dict[str, str] = json.loads(plain)
        return values


def read_key_file(path: Path) -> list[bytes]:
    """Keys of a key file, one per line (blank lines and `#` comments ignored)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise SecretKeyError(f"cannot read secret key file {path}: {error.strerror}") from None
    keys = [
        parse_key(line, f"{path} line {n}")
        for n, line in enumerate(lines, start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not keys:
        raise SecretKeyError(f"secret key file {path} holds no key")
    return keys
