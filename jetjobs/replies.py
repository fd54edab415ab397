"""What `--json` prints for commands whose answer is not an API reply: local work
(a key, schemas, a checked flow file) or work done straight on NATS or on disk."""

from __future__ import annotations

from contracts.base import Frozen


class ConsumerMade(Frozen):
    """`company consumer`: the dispatch consumer a company's bind-only executors pull from."""

    company: str
    pool: str
    stream: str
    consumer: str


class NewKey(Frozen):
    """`credentials new-key`: a fresh secret key, as a key file line."""

    key: str


class KeyRotated(Frozen):
    """`credentials rotate-key`: how many credential sets, template secret values and job
    secret values (a run's, kept until retention removes its job) were re-encrypted, under
    which key."""

    reencrypted: int
    template_secrets: int = 0
    job_secrets: int = 0
    key: str


class SchemasWritten(Frozen):
    """`schema export DIR`: the JSON Schema files written."""

    directory: str
    files: list[str]


class ArtifactSaved(Frozen):
    """`job artifacts ID --out DIR`: one artifact, written to `file` or skipped and why."""

    name: str
    attempt: int
    size: int
    file: str | None = None
    skipped: str | None = None
