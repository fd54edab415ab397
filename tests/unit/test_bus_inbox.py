"""Publishing without nats-py's per-message machinery: frames handed over, acks
resolved on our inbox (or given up on)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from nats.aio.msg import Msg
from nats.js.api import PubAck
from nats.js.errors import APIError, BadRequestError, NoStreamResponseError, ServiceUnavailableError

from bus.inbox import AckInbox, Framed, pub_ack
from bus.publish import Publisher, encode, event_msg_id
from contracts.enums import ErrorKind, Status
from contracts.messages import DeadLetter, JobEvent, JobMessage

NOW = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


class FakeClient:
    """What `AckInbox` and `write_frames` use of a connected nats-py client."""

    max_payload = 1024 * 1024
    is_connected = True

    def __init__(self) -> None:
        self.stats = {"out_msgs": 0, "out_bytes": 0}
        self.written: list[bytes] = []
        self._flush_queue: asyncio.Queue[object] = asyncio.Queue()
        self.kicks = 0
        self.cb: Any = None

    def new_inbox(self) -> str:
        return "_INBOX.test"

    async def subscribe(self, subject: str, cb: Any) -> object:
        self.cb = cb
        return object()

    async def _send_command(self, data: bytes) -> None:
        self.written.append(data)

    async def _flush_pending(self) -> None:
        self.kicks += 1


def ack(framed: Framed, data: bytes) -> Msg:
    return Msg(_client=None, subject=framed.reply, data=data)  # type: ignore[arg-type]


async def opened(patience: float = 5.0) -> tuple[FakeClient, AckInbox]:
    client = FakeClient()
    inbox = AckInbox(client, patience=patience)  # type: ignore[arg-type]
    await inbox.open()
    return client, inbox


async def test_an_ack_resolves_its_message_and_a_missing_one_is_given_up() -> None:
    client, inbox = await opened(patience=0.05)
    first, second = inbox.frame("s.a", b"{}", "a.1"), inbox.frame("s.b", b"{}", "b.1")
    stored, lost = await inbox.send_one(first), await inbox.send_one(second)
    assert isinstance(stored, asyncio.Future) and isinstance(lost, asyncio.Future)
    assert client.written == [first.frame, second.frame]
    await client.cb(ack(first, b'{"stream": "S", "seq": 7}'))
    assert stored.result() == PubAck(stream="S", seq=7)
    async with asyncio.timeout(1):
        with pytest.raises(TimeoutError):
            await lost
    await client.cb(ack(second, b'{"stream": "S", "seq": 8}'))  # too late: nothing waits for it


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"", NoStreamResponseError),
        (b"[1]", APIError),
        (b"{", APIError),
        (b'{"error": {"code": 503, "description": "no leader"}}', ServiceUnavailableError),
        (b'{"error": {"code": 400, "err_code": 10060, "description": "wrong stream"}}', BadRequestError),
    ],
)
async def test_an_unreadable_or_failed_ack_fails_its_message(reply: bytes, error: type[Exception]) -> None:
    client, inbox = await opened()
    framed = inbox.frame("s.a", b"{}", "a.1")
    future = await inbox.send_one(framed)
    await client.cb(ack(framed, reply))
    assert isinstance(future, asyncio.Future) and type(future.exception()) is error


async def test_no_ack_is_given_up_before_the_patience_has_passed() -> None:
    client, inbox = await opened(patience=0.2)
    framed = inbox.frame("s.a", b"{}", "a.1")
    future = await inbox.send_one(framed)
    await asyncio.sleep(0.15)
    await client.cb(ack(framed, b'{"stream": "S", "seq": 1, "duplicate": true}'))
    assert isinstance(future, asyncio.Future) and future.result().duplicate is True


async def test_frames_kick_the_flusher_only_when_no_kick_is_queued() -> None:
    client, inbox = await opened()
    await inbox.send([inbox.frame("s.a", b"{}", "a.1"), inbox.frame("s.b", b"{}", "b.1")])
    assert client.kicks == 1 and len(client.written) == 1
    client._flush_queue.put_nowait(object())
    await inbox.send_one(inbox.frame("s.c", b"{}", "c.1"))
    assert client.kicks == 1 and len(client.written) == 2


async def test_a_message_framed_before_the_inbox_opened_is_refused() -> None:
    client = FakeClient()
    inbox = AckInbox(client)  # type: ignore[arg-type]
    framed = inbox.frame("s.a", b"{}", "a.1")
    await inbox.open()
    assert not isinstance(await inbox.send_one(framed), asyncio.Future)
    assert client.written == []


async def test_confirm_publishes_again_what_was_not_stored() -> None:
    client, inbox = await opened(patience=0.05)
    publisher = Publisher.__new__(Publisher)
    publisher._inbox = inbox
    again: list[str] = []

    async def publish(subject: str, payload: bytes, msg_id: str) -> PubAck:
        again.append(msg_id)
        return PubAck(stream="S", seq=9)

    publisher.publish = publish  # type: ignore[method-assign]
    stored, lost, failed = [await publisher.send(f"s.{n}", b"{}", n) for n in ("a", "b", "c")]
    assert stored.future is not None and failed.future is not None
    await client.cb(ack(stored.framed, b'{"stream": "S", "seq": 1}'))
    await client.cb(ack(failed.framed, b'{"error": {"code": 503, "description": "no leader"}}'))
    acks = await publisher.confirm([stored, lost, failed])
    assert [a.seq for a in acks] == [1, 9, 9] and again == ["b", "c"]


@pytest.mark.parametrize(
    "reply",
    [
        {"stream": "S", "seq": 3},
        {"stream": "S", "seq": 3, "duplicate": True, "domain": "hub", "unknown": 1},
        {"stream": "S", "seq": 3, "batch": "b1", "count": 2},
    ],
)
def test_pub_ack_reads_a_reply_as_nats_py_does(reply: dict[str, Any]) -> None:
    assert pub_ack(dict(reply)) == PubAck.from_response(dict(reply))


def test_encode_is_the_models_json_without_nones() -> None:
    message = JobMessage(
        job_id="j1",
        company="acme",
        argv=["echo", "é"],
        scheduled_at=NOW,
        dispatched_at=NOW,
        timeout=60,
        timeout_ack=30,
        timeout_result=10,
    )
    failed = JobEvent(
        job_id="j1",
        company="acme",
        attempt=2,
        status=Status.ERROR,
        at=NOW,
        kind=ErrorKind.EXIT,
        reason='exit "1"\n',
        stdout="ünïcode \x00",
        retry_in=1.5,
        results={"k": "v"},
    )
    letter = DeadLetter(company="acme", reason="r", subject="s", payload="p", at=NOW)
    for model in (message, failed, letter):
        assert encode(model) == model.model_dump_json(exclude_none=True).encode()
    assert event_msg_id(failed, "n") == "j1.2.error.n"
