"""What a JetStream delivery's reply subject tells, read without nats-py's `Msg.metadata`.

`$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>`;
newer servers put a domain and an account hash before the stream. nats-py builds
two objects and a datetime from it at every look, which costs more than the one
number a hot path needs."""

from __future__ import annotations

from nats.errors import NotJSMessageError

ACK_PREFIX = "$JS.ACK."
V1_TOKENS = 9
"""Tokens of the older form; the newer has two more before the stream (11 or more)."""


def _token(reply: str | None, index: int) -> int:
    """The number at `index` of the older form, wherever the subject's form puts it."""
    tokens = reply.split(".") if reply and reply.startswith(ACK_PREFIX) else []
    if len(tokens) == V1_TOKENS:
        return int(tokens[index])
    if len(tokens) >= V1_TOKENS + 2:
        return int(tokens[index + 2])
    raise NotJSMessageError


def delivery_count(reply: str | None) -> int:
    """How many times JetStream has delivered the message (1 on first)."""
    return _token(reply, 4)


def stream_sequence(reply: str | None) -> int:
    """The message's sequence in its stream."""
    return _token(reply, 5)
