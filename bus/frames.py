"""Handing many ready-made protocol frames to the NATS client in one go.

nats-py has no batch publish: each `publish` validates, encodes and queues one
frame, 10-20 µs of CPU apiece. Where hundreds go out at once (an instant's job
messages, the acks of a stored batch) the frames are joined here and given to
the client's outgoing buffer in one call (`_send_command`, the step its own
`publish` ends with); its flusher then writes them, and is woken only when no
wake-up is queued already, as `publish` does. Private parts of the client: the
nats-py bound in pyproject is the range this is tested with."""

from __future__ import annotations

from collections.abc import Sequence

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.protocol.command import pub_cmd


class NotConnected(Exception):
    """The client is not connected: nothing was handed over."""


async def write_frames(nc: Client, frames: Sequence[bytes]) -> None:
    """Queue the frames for the server in one write (raises `NotConnected`)."""
    if not frames:
        return
    if not nc.is_connected:
        raise NotConnected("not connected to NATS")
    data = b"".join(frames)
    nc.stats["out_msgs"] += len(frames)
    nc.stats["out_bytes"] += len(data)
    await nc._send_command(data)
    if nc._flush_queue is None or nc._flush_queue.empty():
        await nc._flush_pending()


async def ack_all(nc: Client, msgs: Sequence[Msg]) -> None:
    """Acknowledge JetStream deliveries, one `+ACK` frame each, in one write.
    A lost ack means a redelivery, which every consumer here takes as harmless."""
    await write_frames(nc, [pub_cmd(m.reply, "", b"") for m in msgs if m.reply])
