"""A newer client against an older store: a request that uses none of the newer
fields must read as the older store's model, which refuses fields it does not know."""

from __future__ import annotations

import json
from typing import Any

import nats
from nats.aio.msg import Msg

from bus import ApiClient
from contracts import api
from contracts import subjects as s
from contracts.base import Frozen


class RunNowBeforeKeys(Frozen):
    """`template.run`'s request as stores before idempotency keys read it."""

    id: int
    env: dict[str, str] = {}
    timeouts: dict[str, Any] | None = None
    launched_by: str = "api"


class JobQueryBeforeCursors(Frozen):
    """`job.list`'s request as stores before key cursors read it."""

    company: str | None = None
    template_id: int | None = None
    status: str | None = None
    limit: int = 50


async def test_requests_leave_out_what_they_do_not_set(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    received: dict[str, bytes] = {}

    async def old_store(msg: Msg) -> None:
        received[msg.subject] = msg.data
        op = msg.subject.removeprefix(s.api_subject(""))
        if op == "template.run":
            RunNowBeforeKeys.model_validate_json(msg.data)
            await msg.respond(b'{"job_id": "j1", "company": "acme"}')
        else:
            JobQueryBeforeCursors.model_validate_json(msg.data)
            await msg.respond(b'{"jobs": []}')

    try:
        await nc.subscribe(s.api_subject("template.run"), cb=old_store)
        await nc.subscribe(s.api_subject("job.list"), cb=old_store)
        client = ApiClient(nc, timeout=5)
        queued = await client.call(
            "template.run", api.RunNow(id=3, launched_by="cli", key=None), api.JobQueued
        )
        listed = await client.call("job.list", api.JobQuery(company="acme", after=None), api.JobList)
    finally:
        await nc.close()
    assert queued.job_id == "j1" and listed.jobs == []
    assert json.loads(received[s.api_subject("template.run")]) == {"id": 3, "launched_by": "cli"}
    assert json.loads(received[s.api_subject("job.list")]) == {"company": "acme"}
