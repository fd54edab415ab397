"""The dead-letter stream is bounded by age: a deployment whose stream an older
jetjobs made unbounded takes the limit in place at the next start. A server with
too little storage for a stream's size limit (the logs stream's) is named, with the fix;
one with room for it once lets every later process find the stream and start."""

from __future__ import annotations

from pathlib import Path

import pytest
from nats.js.api import StreamConfig
from structlog.testing import capture_logs

from bus import Bus, InfrastructureDrift, Layout
from bus.infra import DAY, provision
from contracts import subjects as s
from executor import ExecutorConfig, ExecutorService
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
        assert config.subjects
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


async def test_a_server_with_room_for_the_logs_limit_once_lets_every_process_start(tmp_path: Path) -> None:
    """NATS reserves the logs stream's size when it is made, and refuses to add it
    again with too little left for a second reservation, before it looks at the name."""
    config = tmp_path / "snug.conf"
    config.write_text("jetstream { max_file_store: 1536M }\n")
    server = NatsServer.start(tmp_path / "nats", config_file=config)
    try:
        first = await Bus.open(server.url, "jetjobs-test", LAYOUT, store=True)
        try:
            with capture_logs() as unchanged:
                await provision(first.js, LAYOUT, store=True)
            with capture_logs() as changed:
                await provision(first.js, Layout(logs_max_age=2 * DAY))
            logs = await first.js.stream_info(s.LOGS_STREAM)
            executor = ExecutorService(ExecutorConfig(nats_url=server.url), LAYOUT)
            await executor.start()
            await executor.stop()
        finally:
            await first.close()
    finally:
        shutdown(server)
    assert not [e for e in unchanged if e["event"] == "bus.stream_updated"], (
        "an unchanged stream is not updated"
    )
    updated = [e["stream"] for e in changed if e["event"] == "bus.stream_updated"]
    assert updated == [s.LOGS_STREAM], "a changed stream is updated in place"
    assert (logs.config.max_age, logs.config.max_bytes) == (2 * DAY, LAYOUT.logs_max_bytes)
