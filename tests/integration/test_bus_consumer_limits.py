"""A consumer NATS refuses to create (a JetStream limit of the server or account) is
named with the server's reason and where to look, not as one to delete: it does not exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus import Bus, InfrastructureDrift, Layout
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
