"""A stream an older jetjobs (or a person) made with settings NATS cannot change in
place is named with the fix, by the API call and by the services at start, not as a
traceback: a single server answers such an update as a server error, not a bad request."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from nats.js.api import RetentionPolicy, StorageType, StreamConfig

from bus import Bus, InfrastructureDrift, Layout
from bus.infra import provision
from contracts import subjects as s
from tests.acceptance.cli import clean_env, jetjobs
from tests.acceptance.test_cli import one_line_error

pytestmark = pytest.mark.timeout(90)

LAYOUT = Layout()


def workqueue(config: StreamConfig) -> None:
    config.retention = RetentionPolicy.WORK_QUEUE


def in_memory(config: StreamConfig) -> None:
    config.storage = StorageType.MEMORY


OLD_STREAMS = [
    pytest.param(s.DISPATCH_STREAM, workqueue, "executor", "retention policy", id="dispatch-workqueue"),
    pytest.param(s.EVENTS_STREAM, in_memory, "scheduler", "storage type", id="events-memory"),
]


async def make_old_stream(url: str, name: str, change: Callable[[StreamConfig], None]) -> None:
    """The declared stream `name`, made by hand with `change` applied."""
    bus = await Bus.attach(url, "jetjobs-test")
    try:
        config = next(c for c in LAYOUT.streams() if c.name == name)
        old = StreamConfig.from_response(config.as_dict())
        change(old)
        await bus.js.add_stream(old)
    finally:
        await bus.close()


def drift_message(name: str) -> str:
    return f"stream {name} exists with settings jetjobs cannot change in place"


@pytest.mark.parametrize(("name", "change", "service", "setting"), OLD_STREAMS)
async def test_provisioning_names_a_stream_that_cannot_change_in_place(
    nats_url: str, name: str, change: Callable[[StreamConfig], None], service: str, setting: str
) -> None:
    await make_old_stream(nats_url, name, change)
    bus = await Bus.attach(nats_url, "jetjobs-test")
    try:
        with pytest.raises(InfrastructureDrift) as refused:
            await provision(bus.js, LAYOUT)
    finally:
        await bus.close()
    assert str(refused.value).startswith(drift_message(name))
    assert setting in str(refused.value)
    assert str(refused.value).endswith("back it up and delete it, or restore its settings")


@pytest.mark.parametrize(("name", "change", "service", "setting"), OLD_STREAMS)
async def test_a_service_started_on_such_a_stream_exits_with_the_fix(
    nats_url: str, name: str, change: Callable[[StreamConfig], None], service: str, setting: str
) -> None:
    await make_old_stream(nats_url, name, change)
    env = clean_env(JETJOBS_NATS_URL=nats_url, JETJOBS_METRICS_PORT="0")
    one_line_error(await jetjobs(service, env=env, timeout=60), drift_message(name))
