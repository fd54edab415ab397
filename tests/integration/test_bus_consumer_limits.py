"""A consumer NATS refuses to create (a JetStream limit of the server or account) is
named with the server's reason and where to look, not as one to delete: it does not exist."""

from __future__ import annotations

from pathlib import Path

import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from bus import Bus, InfrastructureDrift, Layout
from bus.infra import ensure_consumer
from contracts import subjects as s
from jetjobs.embedded import NatsServer
from tests.servers import shutdown

pytestmark = pytest.mark.timeout(60)

LAYOUT = Layout()


async def test_a_consumer_over_the_servers_limits_is_not_said_to_need_deleting(tmp_path: Path) -> None:
    config = tmp_path / "limited.conf"
    config.write_text("jetstream { limits { max_ack_pending: 100 } }\n")
    server = NatsServer.start(tmp_path / "nats", config_file=config)
    try:
        with pytest.raises(InfrastructureDrift) as refused:
            await Bus.open(server.url, "jetjobs-test", LAYOUT, store=True)
    finally:
        shutdown(server)
    assert str(refused.value) == (
        f"NATS refuses to create consumer {s.STORE_DISPATCH_CONSUMER} on {s.DISPATCH_STREAM} "
        "(consumer max ack pending exceeds system limit of 100); "
        "check the JetStream limits of the NATS server and of the account"
    )


async def test_a_consumer_that_cannot_change_in_place_is_named_with_the_fix(nats_url: str) -> None:
    """A durable made by hand (or by another version) with a setting NATS cannot change
    on a live consumer: the message says which one and how to make it again."""
    bus = await Bus.open(nats_url, "jetjobs-test", LAYOUT, store=True)
    try:
        wanted = LAYOUT.pool_consumer("rigid")
        made_by_hand = ConsumerConfig(
            durable_name=wanted.durable_name,
            filter_subject=wanted.filter_subject,
            ack_policy=AckPolicy.ALL,
        )
        await bus.js.add_consumer(s.DISPATCH_STREAM, made_by_hand)
        with pytest.raises(InfrastructureDrift) as refused:
            await ensure_consumer(bus.js, s.DISPATCH_STREAM, wanted)
        assert str(refused.value).startswith(
            f"consumer {wanted.durable_name} on {s.DISPATCH_STREAM} cannot be"
        )
        assert f"`nats consumer rm {s.DISPATCH_STREAM} {wanted.durable_name}`" in str(refused.value)
    finally:
        await bus.js.delete_consumer(s.DISPATCH_STREAM, str(wanted.durable_name))
        await bus.close()
