"""Leadership by a key in the `jetjobs_leases` bucket, whose bucket-level TTL
forgets a holder that stopped renewing (DESIGN §6: `create` to take it,
`update(last=revision)` to renew, so a renewal can never steal it back)."""

from __future__ import annotations

import asyncio
import contextlib

from nats.js import JetStreamContext
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from contracts import subjects as s

RELEASE_WAIT = 2.0
"""Seconds a stopping holder tries to give the lease up: with NATS away it lapses by
its TTL all the same, and a stop should not wait on it."""


class Lease:
    """One holder's view of one lease key."""

    def __init__(self, kv: KeyValue, holder: str, key: str = s.SCHEDULER_LEASE_KEY) -> None:
        self._kv = kv
        self._holder = holder
        self._key = key
        self._revision: int | None = None

    @classmethod
    async def open(cls, js: JetStreamContext, holder: str, key: str = s.SCHEDULER_LEASE_KEY) -> Lease:
        """Bind to the bucket (provisioned by `bus.infra.provision`)."""
        return cls(await js.key_value(s.LEASES_BUCKET), holder, key)

    STREAM = f"KV_{s.LEASES_BUCKET}"
    """The stream under the bucket, where a take's or renewal's stored time can be read."""

    @property
    def revision(self) -> int | None:
        """The sequence in `STREAM` of the last take or renewal that succeeded."""
        return self._revision

    @property
    def held(self) -> bool:
        """Whether the last take or renewal succeeded (the TTL may have run out since)."""
        return self._revision is not None

    async def take(self) -> bool:
        """Take the lease if nobody holds it; False when someone does."""
        try:
            self._revision = await self._kv.create(self._key, self._holder.encode())
        except KeyWrongLastSequenceError:
            self._revision = None
        except APIError as error:
            if error.err_code != 10071:  # wrong last sequence, as the server words it
                raise
            self._revision = None
        return self._revision is not None

    async def renew(self) -> bool:
        """Renew a held lease; False (and no longer held) when someone else took it."""
        if self._revision is None:
            return False
        try:
            self._revision = await self._kv.update(self._key, self._holder.encode(), last=self._revision)
        except (KeyWrongLastSequenceError, KeyNotFoundError, NotFoundError):
            self._revision = None
        except APIError as error:
            if error.err_code != 10071:
                raise
            self._revision = None
        return self._revision is not None

    async def release(self) -> None:
        """Give the lease up at once (a clean stop), so a standby need not wait for the TTL."""
        revision, self._revision = self._revision, None
        if revision is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(RELEASE_WAIT):
                    await self._kv.delete(self._key, last=revision)

    def forget(self) -> None:
        """Stop believing we hold it (e.g. a renewal could not be confirmed in time)."""
        self._revision = None

    async def holder(self) -> str | None:
        """Who holds the lease now, or None when nobody does."""
        try:
            entry = await self._kv.get(self._key)
        except (KeyNotFoundError, NotFoundError):
            return None
        return entry.value.decode(errors="replace") if entry.value else None
