"""The NATS client every jetjobs connection uses: nats-py's, with its header parser guarded.

nats-py (2.16) raises on a header block that does not begin with `NATS/1.0` (one
any client may publish), and its reader stops for good on that error: the
connection hears nothing until its pings time out, and a message stored in a
stream stalls its consumer again at every redelivery. Here such a message is
delivered without its headers instead, and logged."""

from __future__ import annotations

from typing import Any

import structlog
from nats.aio.client import Client

log = structlog.get_logger("jetjobs.bus")

SHOWN = 200
"""Bytes of a malformed header block the log shows."""


class GuardedClient(Client):
    """nats-py's client, whose reader survives a malformed header block."""

    async def _process_headers(self, headers: Any) -> dict[str, str] | None:
        try:
            return await super()._process_headers(headers)
        except Exception as error:
            log.warning(
                "nats.malformed_headers",
                headers=bytes(headers[:SHOWN]).decode(errors="replace"),
                error=repr(error),
                handled="the message is delivered without its headers",
            )
            return None
