"""A delivery's count and stream sequence, read from its reply subject as nats-py's metadata reads them."""

from __future__ import annotations

import pytest
from nats.aio.msg import Msg
from nats.errors import NotJSMessageError

from bus.reply import delivery_count, stream_sequence

REPLIES = [
    ("$JS.ACK.JETJOBS_DISPATCH.pool-default.3.10.4.1700000000000000000.0", 3, 10),
    ("$JS.ACK.hub.ACCHASH.JETJOBS_DISPATCH.pool-default.2.11.4.1700000000000000000.0.tok", 2, 11),
    ("$JS.ACK._.ACCHASH.JETJOBS_EVENTS.store_events.5.12.9.1700000000000000000.3", 5, 12),
]


@pytest.mark.parametrize(("reply", "count", "sequence"), REPLIES)
def test_both_numbers_match_the_metadata(reply: str, count: int, sequence: int) -> None:
    metadata = Msg(_client=None, reply=reply).metadata  # type: ignore[arg-type]
    assert delivery_count(reply) == count == metadata.num_delivered
    assert stream_sequence(reply) == sequence == metadata.sequence.stream


@pytest.mark.parametrize("reply", [None, "", "_INBOX.abc.1", "$JS.ACK.S.c.1.2"])
def test_a_reply_that_is_not_jetstreams_has_neither(reply: str | None) -> None:
    with pytest.raises(NotJSMessageError):
        delivery_count(reply)
    with pytest.raises(NotJSMessageError):
        stream_sequence(reply)
