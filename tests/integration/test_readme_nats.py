"""The `nats` CLI lines in the README work as written against the demo setup:
each `req` gets an answer that is not an error, each `sub` sees messages."""

from __future__ import annotations

import asyncio
import json
import shlex
from pathlib import Path

from jetjobs import demo
from tests.stack import running_stack

README = Path(__file__).resolve().parents[2] / "README.md"


def nats_commands(verb: str) -> list[list[str]]:
    """The arguments after the verb of every `nats -s URL VERB …` line of the README."""
    found = []
    for line in README.read_text().splitlines():
        line = line.removeprefix("$ ").split("  #")[0].strip()
        if line.startswith("nats "):
            words = shlex.split(line)
            if words[3] == verb:
                found.append(words[4:])
    return found


async def test_every_readme_request_is_answered_without_error(nats_url: str, database_url: str) -> None:
    requests = nats_commands("req")
    assert len(requests) >= 3
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        await demo.install(stack.client)
        for subject, payload in requests:
            reply = await stack.bus.nc.request(subject, payload.encode(), timeout=10)
            assert not (reply.headers or {}).get("Nats-Service-Error"), (subject, reply.data)
            assert isinstance(json.loads(reply.data), dict)


async def test_every_readme_subscription_sees_a_job_happen(nats_url: str, database_url: str) -> None:
    subscriptions = nats_commands("sub")
    assert {s[0] for s in subscriptions} >= {"jetjobs.events.demo.>", "jetjobs.logs.demo.>"}
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        await demo.install(stack.client)
        subs = [await stack.bus.nc.subscribe(s[0]) for s in subscriptions]
        listed = json.loads((await stack.bus.nc.request("jetjobs.api.template.list", b"{}", timeout=10)).data)
        hello = next(t for t in listed["templates"] if t["name"] == "hello")
        await stack.run(hello["id"])
        for sub in subs:
            message = await sub.next_msg(timeout=20)
            assert json.loads(message.data)["company"] == "demo"
        await asyncio.gather(*(sub.unsubscribe() for sub in subs))


def test_the_readme_documents_the_micro_commands() -> None:
    assert ["ls"] in nats_commands("micro") and ["info", "jetjobs-api"] in nats_commands("micro")
