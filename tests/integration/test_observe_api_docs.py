"""The store's micro service documents itself: `nats micro info jetjobs-api`."""

from __future__ import annotations

import json

from contracts import subjects as s
from contracts.api import OPERATIONS
from tests.stack import running_stack


async def test_srv_info_lists_every_endpoint_with_its_description(nats_url: str, database_url: str) -> None:
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        reply = await stack.bus.nc.request(f"$SRV.INFO.{s.API_SERVICE}", b"", timeout=5)
        info = json.loads(reply.data)
        assert info["name"] == s.API_SERVICE and info["description"]
        endpoints = {e["subject"]: e for e in info["endpoints"]}
        assert set(endpoints) == {s.api_subject(op) for op in OPERATIONS}
        for op, spec in OPERATIONS.items():
            assert endpoints[s.api_subject(op)]["metadata"]["description"] == spec.description

        ping = json.loads((await stack.bus.nc.request(f"$SRV.PING.{s.API_SERVICE}", b"", timeout=5)).data)
        assert ping["name"] == s.API_SERVICE
