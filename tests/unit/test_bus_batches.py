"""A delivery's stream sequence, read from its reply subject as nats-py's metadata reads it."""

from __future__ import annotations

import pytest
from nats.aio.msg import Msg
from nats.errors import NotJSMessageError

from bus.batches import stream_sequence


@pytest.mark.parametrize(
    ("reply", "sequence"),
    [
        ("$JS.ACK.JETJOBS_DISPATCH.store_dispatch.1.10.4.1700000000000000000.0", 10),
        ("$JS.ACK.hub.ACCHASH.JETJOBS_DISPATCH.store_dispatch.2.11.4.1700000000000000000.0.tok", 11),
        ("$JS.ACK._.ACCHASH.JETJOBS_EVENTS.store_events.1.12.9.1700000000000000000.3", 12),
    ],
)
def test_stream_sequence_matches_the_metadata(reply: str, sequence: int) -> None:
    msg = Msg(_client=None, reply=reply)  # type: ignore[arg-type]
    assert stream_sequence(reply) == sequence == msg.metadata.sequence.stream


@pytest.mark.parametrize("reply", [None, "", "_INBOX.abc.1", "$JS.ACK.S.c.1.2"])
def test_a_reply_that_is_not_jetstreams_has_no_stream_sequence(reply: str | None) -> None:
    with pytest.raises(NotJSMessageError):
        stream_sequence(reply)
