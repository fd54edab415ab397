"""`jetjobs up` keeps its metrics port from run to run: the sockets the last run's
scrapes left in TIME_WAIT do not move it, a server still listening there does."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from bus.telemetry import Telemetry
from jetjobs.observe.http import MetricsServer
from jetjobs.up import _port_or_none

HOST = "127.0.0.1"
TIME_WAIT = "06"


def in_time_wait(port: int) -> bool:
    """Whether a TCP socket on local `port` is in TIME_WAIT (/proc/net/tcp, IPv4)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if int(local.split(":")[1], 16) == port and state == TIME_WAIT:
            return True
    return False


def scraped_and_closed_by_the_server(port: int) -> None:
    """A scrape read to the end: the server closes first, so its side waits in TIME_WAIT."""
    with socket.create_connection((HOST, port), timeout=5) as client:
        client.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        while client.recv(65536):
            pass


async def test_a_port_left_in_time_wait_is_kept_and_a_live_one_is_not_shared() -> None:
    telemetry = Telemetry()
    first = MetricsServer(telemetry, HOST, 0)
    await first.start()
    port = first.port
    try:
        assert _port_or_none(port, HOST) is None, "a server listens there"
        await asyncio.to_thread(scraped_and_closed_by_the_server, port)
    finally:
        await first.stop()
    assert in_time_wait(port), "the scrape left the port in TIME_WAIT"

    assert _port_or_none(port, HOST) == port
    again = MetricsServer(telemetry, HOST, port)
    await again.start()
    try:
        assert again.port == port
        assert _port_or_none(port, HOST) is None, "never two live servers on one port"
    finally:
        await again.stop()
