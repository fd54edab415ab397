"""Every stream, consumer and KV bucket jetjobs needs, declared in one place
and reconciled with the server at start."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import structlog
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, BadRequestError, NotFoundError, ServerError

from contracts import subjects as s
from contracts.flows import FLOWS_ALL, FLOWS_STREAM
from contracts.tenants import tenant_consumer

log = structlog.get_logger("jetjobs.bus")

DAY = 86400.0
MAX_MESSAGE_BYTES = 1024 * 1024


class InfrastructureDrift(Exception):
    """A stream or consumer on the server differs from what jetjobs declares
    in a way the server will not update in place."""


@dataclass(frozen=True)
class Layout:
    """The knobs an operator may turn; everything else is fixed by the contract."""

    replicas: int = 1
    dedup_window: float = 600.0
    events_max_age: float = 30 * DAY
    dead_max_age: float = 30 * DAY
    logs_max_age: float = DAY
    logs_max_bytes: int = 1024**3
    ack_wait: float = 30.0
    lease_ttl: float = 5.0
    cancel_ttl: float = 7 * DAY

    @property
    def runner_ttl(self) -> float:
        """How long a runner stays listed after its last heartbeat: one AckWait,
        the time after which JetStream would redeliver its jobs anyway."""
        return max(self.ack_wait, 2.0)

    @property
    def runner_beat(self) -> float:
        """How often an executor announces itself: three beats per TTL."""
        return self.runner_ttl / 3

    def streams(self) -> list[StreamConfig]:
        """The streams of the public subject contract."""
        return [
            self._stream(
                name=s.DISPATCH_STREAM,
                description="job messages waiting for an executor",
                subjects=[s.DISPATCH_ALL],
                retention=RetentionPolicy.INTEREST,
                duplicate_window=self.dedup_window,
                allow_msg_ttl=True,
            ),
            self._stream(
                name=s.EVENTS_STREAM,
                description="job lifecycle events",
                subjects=[s.EVENTS_ALL],
                retention=RetentionPolicy.LIMITS,
                max_age=self.events_max_age,
                duplicate_window=120.0,
            ),
            self._stream(
                name=s.LOGS_STREAM,
                description="job stdout/stderr chunks",
                subjects=[s.LOGS_ALL],
                retention=RetentionPolicy.LIMITS,
                max_age=self.logs_max_age,
                max_bytes=self.logs_max_bytes,
            ),
            self._stream(
                name=s.DEAD_STREAM,
                description="messages no executor could run, with the reason",
                subjects=[s.DEAD_ALL],
                retention=RetentionPolicy.LIMITS,
                max_age=self.dead_max_age,
                duplicate_window=120.0,
            ),
            self._stream(
                name=FLOWS_STREAM,
                description="flow runs to start, sent by schedulers when a flow template fires",
                subjects=[FLOWS_ALL],
                retention=RetentionPolicy.LIMITS,
                max_age=self.events_max_age,
                duplicate_window=self.dedup_window,
            ),
            self._stream(
                name=s.SLOTS_STREAM,
                description="what happened to every scheduled slot: fired, late or skipped",
                subjects=[s.SLOTS_ALL],
                retention=RetentionPolicy.LIMITS,
                max_age=self.events_max_age,
                duplicate_window=120.0,
            ),
        ]

    def _stream(self, **fields: Any) -> StreamConfig:
        return StreamConfig(
            storage=StorageType.FILE,
            num_replicas=self.replicas,
            max_msg_size=MAX_MESSAGE_BYTES,
            discard=DiscardPolicy.OLD,
            **fields,
        )

    def store_consumers(self) -> list[tuple[str, ConsumerConfig]]:
        """The store's durable consumers: one per stream it projects."""
        return [
            (stream, self.durable(name, subject, "store: project into Postgres"))
            for stream, name, subject in (
                (s.DISPATCH_STREAM, s.STORE_DISPATCH_CONSUMER, s.DISPATCH_ALL),
                (s.EVENTS_STREAM, s.STORE_EVENTS_CONSUMER, s.events_filter()),  # job events, not flow events
                (s.DEAD_STREAM, s.STORE_DEAD_CONSUMER, s.DEAD_ALL),
                (s.SLOTS_STREAM, s.STORE_SLOTS_CONSUMER, s.SLOTS_ALL),
            )
        ]

    def pool_consumer(self, pool: str) -> ConsumerConfig:
        """The durable consumer every executor of `pool` pulls from."""
        return self.durable(s.pool_consumer(pool), s.pool_filter(pool), f"executors of pool {pool}")

    def company_consumer(self, company: str, pool: str) -> ConsumerConfig:
        """The durable consumer only `company`'s executors of `pool` pull from, when
        NATS permissions confine them to their company."""
        return self.durable(
            tenant_consumer(company, pool),
            s.dispatch_subject(company, pool),
            f"executors of company {company}, pool {pool}",
        )

    def durable(self, name: str, subject: str, description: str, **overrides: Any) -> ConsumerConfig:
        """A durable pull consumer with explicit acks, redelivered without limit."""
        settings: dict[str, Any] = {
            "ack_policy": AckPolicy.EXPLICIT,
            "ack_wait": self.ack_wait,
            "max_deliver": -1,
            "max_ack_pending": 20000,
            "max_waiting": 512,
            "num_replicas": self.replicas,
        }
        return ConsumerConfig(
            durable_name=name, description=description, filter_subject=subject, **(settings | overrides)
        )

    def buckets(self) -> list[KeyValueConfig]:
        """Templates (watched by schedulers), leader leases and runners (with a TTL), cancels."""
        return [
            self._bucket(s.TEMPLATES_BUCKET, "active run templates, projected by the store"),
            self._bucket(s.LEASES_BUCKET, "scheduler leader lease", ttl=self.lease_ttl),
            self.runners_bucket(),
            self._bucket(s.CANCELS_BUCKET, "cancelled job ids, watched by executors", ttl=self.cancel_ttl),
        ]

    def runners_bucket(self) -> KeyValueConfig:
        """Heartbeats, kept in memory: a NATS restart loses the bucket, and whoever
        finds it missing makes it again with this (see `bus.boards.RunnerBoard`)."""
        return self._bucket(
            s.RUNNERS_BUCKET,
            "live executors: a key vanishes when its heartbeats stop",
            ttl=self.runner_ttl,
            storage=StorageType.MEMORY,
        )

    def _bucket(
        self, name: str, description: str, ttl: float | None = None, storage: StorageType = StorageType.FILE
    ) -> KeyValueConfig:
        return KeyValueConfig(
            bucket=name,
            description=description,
            history=1,
            ttl=ttl,
            storage=storage,
            replicas=self.replicas,
        )


NO_STORAGE = 10047
"""JetStream's "insufficient storage resources": a stream's `max_bytes` is reserved
on the server up front, and the server has less file storage left than it asks."""


def _no_storage(config: StreamConfig) -> InfrastructureDrift:
    size = f"{(config.max_bytes or 0) / 1024**3:g} GiB"
    return InfrastructureDrift(
        f"stream {config.name} needs {size} of JetStream file storage for its size limit and the "
        "NATS server has less left: raise `max_file_store` in its jetstream block (or free disk space)"
    )


NAME_IN_USE = 10058
"""JetStream's "stream name already in use with a different configuration"."""

STREAM_INVALID_CONFIG = 10052
"""What a single NATS server answers (as a server error) to a stream update it cannot
make in place, e.g. of the retention policy to or from workqueue, or of the storage type;
a cluster answers it as a bad request."""


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream, or update it in place when its settings changed (limits
    of age and size included: a stream made by an older jetjobs takes the new ones)."""
    try:
        await js.add_stream(config)
    except APIError as error:
        if error.err_code not in (NAME_IN_USE, NO_STORAGE):
            raise
        try:
            current = await js.stream_info(str(config.name))
        except NotFoundError:
            if error.err_code == NO_STORAGE:
                raise _no_storage(config) from None
            raise
        await _update_stream(js, config, current.config)


async def _update_stream(js: JetStreamContext, config: StreamConfig, current: StreamConfig) -> None:
    """Update an existing stream. A server short of storage refuses to add a stream
    whose size it already reserved, even unchanged, so this runs for such a stream
    at every start too, and says so only when something changed."""
    try:
        updated = await js.update_stream(config)
    except APIError as error:
        if error.err_code == NO_STORAGE:
            raise _no_storage(config) from None
        if not isinstance(error, BadRequestError) and error.err_code != STREAM_INVALID_CONFIG:
            raise
        raise InfrastructureDrift(
            f"stream {config.name} exists with settings jetjobs cannot change in place "
            f"({error.description}); back it up and delete it, or restore its settings"
        ) from None
    if updated.config != current:
        log.info("bus.stream_updated", stream=config.name)


CONSUMER_CREATE_ERROR = 10012
"""What a single NATS server answers (as a server error) to a change of a consumer it
cannot make in place, e.g. its ack policy; a cluster answers it as a bad request."""


async def ensure_consumer(js: JetStreamContext, stream: str, config: ConsumerConfig) -> None:
    """Create the durable consumer, or update what the server allows to change."""
    name = str(config.durable_name)
    try:
        await js.add_consumer(stream, config)
    except (BadRequestError, ServerError) as error:
        if isinstance(error, ServerError) and error.err_code != CONSUMER_CREATE_ERROR:
            raise
        try:
            await js.consumer_info(stream, name)
        except NotFoundError:  # nothing to delete: the server refuses the config itself (its limits)
            raise InfrastructureDrift(
                f"NATS refuses to create consumer {name} on {stream} ({error.description}); "
                "check the JetStream limits of the NATS server and of the account"
            ) from None
        raise InfrastructureDrift(
            f"consumer {name} on {stream} cannot be reconciled "
            f"({error.description}); delete it with `nats consumer rm {stream} {name}`"
        ) from None


async def ensure_bucket(js: JetStreamContext, config: KeyValueConfig) -> bool:
    """Create the KV bucket when missing (whether it was); an existing one is left as it is."""
    try:
        await js.key_value(config.bucket)
    except (NotFoundError, BadRequestError):
        await js.create_key_value(config)
        return True
    return False


RETIRED_CONSUMERS = [(s.EVENTS_STREAM, "store_flows")]
"""Durable consumers earlier stores made and no store reads: deleted where found.
`store_flows` read every job event for the flow orchestrator, which now takes
outcomes from the flow inbox in Postgres."""


async def provision(js: JetStreamContext, layout: Layout, *, store: bool = False) -> None:
    """Make the server match the declared layout (idempotent, safe to race)."""
    for stream in layout.streams():
        await ensure_stream(js, stream)
    for bucket in layout.buckets():
        await ensure_bucket(js, bucket)
    if store:
        for stream_name, consumer in layout.store_consumers():
            await ensure_consumer(js, stream_name, consumer)
        for stream_name, durable in RETIRED_CONSUMERS:
            with contextlib.suppress(NotFoundError):
                await js.delete_consumer(stream_name, durable)
