"""Pulling batches from a durable consumer on a real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from bus.batches import BatchPuller

STREAM, DURABLE = "BATCHES", "reader"


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url)
    js = client.jetstream()
    await js.add_stream(StreamConfig(name=STREAM, subjects=["batches.>"]))
    await js.add_consumer(
        STREAM, ConsumerConfig(durable_name=DURABLE, ack_policy=AckPolicy.EXPLICIT, ack_wait=1.0)
    )
    try:
        yield client
    finally:
        await client.close()


async def publish(nc: Client, count: int, start: int = 0) -> None:
    js = nc.jetstream()
    for i in range(start, start + count):
        await js.publish(f"batches.{i % 7}", str(i).encode(), headers={"Nats-Msg-Id": str(i)})


async def test_a_backlog_comes_in_full_batches_in_stream_order(nc: Client) -> None:
    await publish(nc, 1200)
    puller = BatchPuller(nc, STREAM, DURABLE)
    try:
        sizes, seen = [], []
        for _ in range(3):
            msgs = await puller.fetch(500, timeout=2)
            sizes.append(len(msgs))
            seen += [int(m.data) for m in msgs]
            for msg in msgs:
                await msg.ack()
        assert sizes == [500, 500, 200]
        assert seen == list(range(1200))
        assert await puller.fetch(500, timeout=0.3) == []
    finally:
        await puller.close()


async def test_a_fetch_on_an_empty_stream_returns_the_first_message_to_arrive(nc: Client) -> None:
    puller = BatchPuller(nc, STREAM, DURABLE)
    try:

        async def later() -> None:
            await asyncio.sleep(0.3)
            await publish(nc, 3)

        loop = asyncio.get_running_loop()
        began = loop.time()
        publishing = asyncio.create_task(later())
        msgs = await puller.fetch(100, timeout=20)
        await publishing
        assert msgs and [int(m.data) for m in msgs] == list(range(len(msgs)))
        assert loop.time() - began < 10, "returned when messages came, not when the request expired"
        for msg in msgs:
            await msg.ack()
        rest = await puller.fetch(100, timeout=2) if len(msgs) < 3 else []
        assert [int(m.data) for m in msgs + rest] == [0, 1, 2]
    finally:
        await puller.close()


async def test_messages_taken_but_never_acked_are_delivered_again(nc: Client) -> None:
    await publish(nc, 5)
    first = BatchPuller(nc, STREAM, DURABLE)
    assert len(await first.fetch(10, timeout=2)) == 5
    await first.close()  # a store stopped before COMMIT: no ack
    second = BatchPuller(nc, STREAM, DURABLE)
    try:
        again = await second.fetch(10, timeout=5)
        assert sorted(int(m.data) for m in again) == [0, 1, 2, 3, 4]
        assert all(m.metadata.num_delivered == 2 for m in again)
    finally:
        await second.close()


async def test_acked_messages_are_never_delivered_again(nc: Client) -> None:
    await publish(nc, 5)
    first = BatchPuller(nc, STREAM, DURABLE)
    taken = await first.fetch(10, timeout=2)
    await first.ack(taken)
    await first.close()
    second = BatchPuller(nc, STREAM, DURABLE)
    try:
        assert len(taken) == 5
        assert await second.fetch(10, timeout=2.5) == []  # past the 1 s ack wait
    finally:
        await second.close()


async def test_a_deleted_consumer_means_no_messages_not_a_crash(nc: Client) -> None:
    await publish(nc, 2)
    await nc.jetstream().delete_consumer(STREAM, DURABLE)
    puller = BatchPuller(nc, STREAM, DURABLE)
    try:
        assert await puller.fetch(10, timeout=0.5) == []
    finally:
        await puller.close()
