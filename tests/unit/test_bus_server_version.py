"""The nats-server versions jetjobs accepts, said as soon as it connects."""

from __future__ import annotations

import pytest

from bus import UnsupportedNats
from bus.connection import OLDEST_NATS, check_server


def test_an_older_server_is_refused_with_what_to_do() -> None:
    with pytest.raises(UnsupportedNats) as refused:
        check_server("2.9.10", "nats://jj:secret@nats.example:4222")
    message = str(refused.value)
    wanted = ".".join(map(str, OLDEST_NATS))
    assert f"is nats-server 2.9.10, and jetjobs needs {wanted} or newer" in message
    assert "nats://jj:***@nats.example:4222" in message and "secret" not in message
    assert "JETJOBS_NATS_URL" in message


@pytest.mark.parametrize("version", ["2.10.25", "1.4.1", "v2.10.0-beta.3"])
def test_every_older_release_is_refused(version: str) -> None:
    with pytest.raises(UnsupportedNats):
        check_server(version, "nats://127.0.0.1:4222")


@pytest.mark.parametrize("version", ["2.11.0", "2.12.0-RC.1", "2.15.1", "3.0.0", "", "unknown"])
def test_newer_servers_and_unstated_versions_pass(version: str) -> None:
    check_server(version, "nats://127.0.0.1:4222")
