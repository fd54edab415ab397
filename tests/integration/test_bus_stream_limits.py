"""The dead-letter stream is bounded by age: a deployment whose stream an older
jetjobs made unbounded takes the limit in place at the next start. A server with
too little storage for a stream's size limit (the logs stream's) is named, with the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from nats.js.api import StreamConfig

from bus import Bus, InfrastructureDrift, Layout
from bus.infra import provision
from contracts import subjects as s
from jetjobs.embedded import NatsServer
from tests.servers import shutdown

pytestmark = pytest.mark.timeout(60)

LAYOUT = Layout()


async def test_an_unbounded_dead_letter_stream_of_an_older_jetjobs_takes_the_limit(nats_url: str) -> None:
    bus = await Bus.attach(nats_url, "jetjobs-test")
    try:
        config = next(c for c in LAYOUT.streams() if c.name == s.DEAD_STREAM)
        old = StreamConfig.from_response(config.as_dict())
        old.max_age = None
        await bus.js.add_stream(old)
        await bus.js.publish(config.subjects[0].replace(">", "acme"), b"{}")
        await provision(bus.js, LAYOUT, store=True)
        dead = await bus.js.stream_info(s.DEAD_STREAM)
    finally:
        await bus.nc.close()
    assert (dead.config.max_age, dead.config.max_bytes) == (LAYOUT.dead_max_age, -1)
    assert dead.state.messages == 1, "updating the limit keeps what the stream holds"


async def test_too_little_storage_for_the_limits_is_named(tmp_path: Path) -> None:
    config = tmp_path / "small.conf"
    config.write_text("jetstream { max_file_store: 512M }\n")
    server = NatsServer.start(tmp_path / "nats", config_file=config)
    try:
        with pytest.raises(InfrastructureDrift, match="raise `max_file_store`") as refused:
            await Bus.open(server.url, "jetjobs-test", LAYOUT, store=True)
    finally:
        shutdown(server)
    assert f"stream {s.LOGS_STREAM} needs 1 GiB of JetStream file storage" in str(refused.value)
