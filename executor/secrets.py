"""Secrets just in time: a job message names the variables its credentials
provide; the executor asks the store for their values right before starting
the process, and masks them in everything the job prints, stored or streamed.
It masks as well the values of the variables the message lists in `masked`
(fields the application declares secret, set by a default, the template or
the run), which travel in the message's env."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bus import ApiClient
from contracts import masks
from contracts.api import ApiFailure
from contracts.dispatch import fill_secrets
from contracts.messages import JobMessage
from contracts.tenants import SecretsReply, SecretsRequest

from .artifacts import TRANSIENT, ArtifactCollector
from .output import Capture, Sink

MASK = masks.MASK.encode()
TRUNCATED = "\n[jetjobs: output truncated"


class Masker:
    """Replaces every secret value in output with a fixed mask."""

    def __init__(self, values: Sequence[str]) -> None:
        secrets = [value.encode() for value in masks.maskable(values)]
        self._secrets = secrets
        self.longest = len(secrets[0]) if secrets else 0

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def mask(self, data: bytes) -> bytes:
        for secret in self._secrets:
            data = data.replace(secret, MASK)
        return data

    def capture(self, inner: Capture) -> Capture:
        """`inner` as it may be reported: masked when there is anything to mask."""
        return MaskedCapture(inner, self) if self else inner

    def results(self, results: dict[str, str]) -> dict[str, str]:
        """A job's results as they may be reported: they travel in its result event,
        on to the record and to the steps of a flow, as its output does."""
        if not self:
            return results
        return {self._masked(key): self._masked(value) for key, value in results.items()}

    def _masked(self, text: str) -> str:
        return self.mask(text.encode(errors="surrogatepass")).decode(errors="surrogatepass")

    def mask_text(self, text: str) -> str:
        """Masks whole values, and a value cut short where the kept output was cut."""
        body, marker, rest = text.partition(TRUNCATED)
        masked = self.mask(body.encode())
        if not marker:
            return masked.decode("utf-8", errors="replace")
        for secret in self._secrets:
            for size in range(len(secret) - 1, 0, -1):
                if masked.endswith(secret[:size]):
                    masked = masked[:-size] + MASK
                    break
        return masked.decode("utf-8", errors="replace") + marker + rest


UNMASKED = Masker([])
"""The masker of a job without secrets: it leaves everything as it is."""


class MaskedCapture(Capture):
    """A finished capture whose text never shows a secret."""

    def __init__(self, inner: Capture, masker: Masker) -> None:
        super().__init__(inner.limit)
        self.total = inner.total
        self._inner = inner
        self._masker = masker

    def feed(self, chunk: bytes) -> None:
        self._inner.feed(chunk)
        self.total = self._inner.total

    def text(self, limit: int | None = None) -> str:
        return self._masker.mask_text(self._inner.text(limit))


@dataclass
class MaskingSink:
    """Masks live output before it is streamed. It holds back the last bytes of
    each stream that could be the start of a secret until more output (or
    `flush`) shows they are not."""

    sink: Sink | None
    masker: Masker
    _pending: dict[str, bytes] = field(default_factory=dict)

    async def __call__(self, stream: str, data: bytes) -> None:
        buffered = self.masker.mask(self._pending.get(stream, b"") + data)
        keep = max(self.masker.longest - 1, 0)
        cut = max(len(buffered) - keep, 0)
        self._pending[stream] = buffered[cut:]
        if cut and self.sink is not None:
            await self.sink(stream, buffered[:cut])

    async def flush(self) -> None:
        """Send what was held back, once the process has finished writing."""
        for stream, rest in list(self._pending.items()):
            self._pending[stream] = b""
            if rest and self.sink is not None:
                await self.sink(stream, self.masker.mask(rest))


@dataclass(frozen=True)
class Prepared:
    """What to start: the command and environment with secrets filled in."""

    argv: list[str]
    env: dict[str, str]
    masker: Masker


@dataclass(frozen=True)
class Refused:
    """The job cannot start: a required variable is missing, or its secrets could not all be fetched."""

    reason: str


@dataclass(frozen=True)
class Unavailable:
    """The store could not hand the secrets over just now (it cannot reach PostgreSQL,
    or did not answer): the job is not at fault, and runs once the store is back."""

    reason: str


def missing_required(required: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """Required variables unset or empty in the job's final environment."""
    return sorted(name for name in required if not env.get(name))


def unserved_reason(names: Sequence[str]) -> str:
    """Why a job whose secrets the store did not all hand over never starts: run
    without them, it would see them empty and could do harm instead of failing."""
    return (
        f"missing secret variables: {', '.join(names)}: the store did not provide them (e.g. a credential "
        "set unassigned from the template since the job was dispatched, or a store of an older version "
        "answering during an upgrade: see README, Upgrading)"
    )


class SecretSource:
    """Fetches a job's credential values from the store, as this executor's actor; a job
    without a template (a flow's `app:` node) asks for the values sealed for it alone."""

    def __init__(self, client: ApiClient | None) -> None:
        self._client = client

    async def fetch(self, message: JobMessage) -> dict[str, str]:
        if not message.secrets:
            return {}
        if self._client is None:
            raise ApiFailure(400, "the job names secrets but this executor has no way to fetch them")
        request = SecretsRequest(
            job_id=message.job_id,
            company=message.company,
            template_id=message.template_id,
            names=message.secrets,
        )
        reply = await self._client.call("secrets.fetch", request, SecretsReply)
        return reply.values

    async def prepare(self, message: JobMessage, env: Mapping[str, str]) -> Prepared | Refused | Unavailable:
        """The final argv and environment; values fetched never leave this process."""
        if not message.secrets and not message.required and not message.masked:
            return Prepared(list(message.argv), dict(env), UNMASKED)
        try:
            values = await self.fetch(message)
        except ApiFailure as failure:
            if failure.code in TRANSIENT:
                return Unavailable(f"could not fetch the job's credentials: {failure.message}")
            return Refused(f"could not fetch the job's credentials: {failure.message}")
        unserved = sorted(name for name in message.secrets if name not in values)
        if unserved:
            return Refused(unserved_reason(unserved))
        final = {**env, **{k: v for k, v in values.items() if k not in env}}
        missing = missing_required(message.required, final)
        if missing:
            return Refused(
                f"missing required variables: {', '.join(missing)} (set them in the template or a credential)"
            )
        declared = [final[name] for name in message.masked or () if name in final]
        return Prepared(fill_secrets(message.argv, values), final, Masker([*values.values(), *declared]))


@dataclass(frozen=True)
class Tenancy:
    """The executor's side of tenancy: credentials fetched just in time, artifacts stored."""

    secrets: SecretSource = field(default_factory=lambda: SecretSource(None))
    artifacts: ArtifactCollector = field(default_factory=lambda: ArtifactCollector(None))

    @classmethod
    def over(cls, client: ApiClient) -> Tenancy:
        return cls(SecretSource(client), ArtifactCollector(client))
