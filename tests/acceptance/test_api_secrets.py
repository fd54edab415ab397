"""The value of a variable the application declares secret (MultiFlexi `"type":
"password"`), set in a template's env, is never shown by the store: not by the API
ops that return templates, not in a job's argv, not in a dead letter's message (which
names it only, as it does a credential's), so neither by `--json` nor by the text
views; to admins no more than to readers, as `template env` masks it. The job still
runs with it, and so does a replay."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import pytest
from pydantic import BaseModel

from bus import ApiClient
from contracts import api
from contracts import tenants as t
from contracts.api import OPERATIONS
from contracts.enums import ErrorKind, Status
from contracts.lifecycle import DeadLetterList, DeadLetterQuery, DeadLetterRecord, DeadLetterRef
from contracts.models import RunTemplate, TemplateSpec
from contracts.records import JobRecord
from store.credentials import new_key
from store.tokens import bootstrap_token
from tests.acceptance.cli import clean_env, jetjobs
from tests.integration.tenants_stack import keyring, tenant_stack
from tests.stack import Stack, eventually

pytestmark = pytest.mark.timeout(180)

PASSWORD = "tmplPW99-abra"
URL = "https://abra.example"
SCRIPT = 'echo "len=${#ABRA_PASSWORD} $ABRA_URL"; test "$1" = "$ABRA_PASSWORD" && echo same; exit 3'
APP = {
    "uuid": "5d0c3f6e-2b1a-4e7d-9c8b-7a6f5e4d3c2b",
    "name": "Abra export",
    "executable": "sh",
    "cmdparams": f"-c '{SCRIPT}' argv0 {{ABRA_PASSWORD}}",
    "environment": {"ABRA_PASSWORD": {"type": "password"}, "ABRA_URL": {"type": "string"}},
}
RAN = f"len={len(PASSWORD)} {URL}\nsame\n"
"""What the job prints when it got the password itself, in its env and its argv."""


@dataclass
class Demo:
    """Company `demo`, closed: `root` is its admin, `rita` its reader; `root` set the
    password in template `template`; job `job` of it failed and is dead letter `letter`."""

    stack: Stack
    root: ApiClient
    rita: ApiClient
    template: int
    job: str
    letter: int
    changed: RunTemplate
    """What the admin's change of the password answered."""

    async def ask(self, client: ApiClient, op: str, request: BaseModel) -> str:
        """The reply, as the JSON a client receives."""
        return (await client.call(op, request, OPERATIONS[op].reply)).model_dump_json()


async def _failed_job(stack: Stack, template: int) -> JobRecord:
    queued = await stack.client.call("template.run", api.RunNow(id=template), api.JobQueued)
    job = await stack.final_job(queued.job_id)
    assert (job.status, job.kind, job.stdout) == (Status.ERROR, ErrorKind.EXIT, RAN), job
    return job


@pytest.fixture
async def demo(nats_url: str, database_url: str) -> AsyncIterator[Demo]:
    runner = await bootstrap_token(database_url, t.TokenCreate(actor="runner"))  # fetches the password
    ring = keyring(new_key())
    async with tenant_stack(
        nats_url, database_url, ring, executor_actor="runner", api_token=runner.token
    ) as stack:
        root, rita = ApiClient(stack.bus.nc, actor="root"), ApiClient(stack.bus.nc, actor="rita")
        await stack.company("demo")
        await stack.client.call(
            "actor.grant", t.ActorGrant(company="demo", actor="root", role="admin", close=True), t.ActorList
        )
        await root.call("actor.grant", t.ActorGrant(company="demo", actor="rita", role="reader"), t.ActorList)
        await root.call(
            "actor.grant", t.ActorGrant(company="demo", actor="runner", role="executor"), t.ActorList
        )
        await stack.client.call("app.import", api.AppImport(document=APP), api.AppImported)
        spec = {"name": "export", "app": APP["uuid"], "company": "demo", "env": {"ABRA_URL": URL}}
        created = await root.call("template.create", TemplateSpec.model_validate(spec), RunTemplate)
        update = api.TemplateUpdate(id=created.id, set_env={"ABRA_PASSWORD": PASSWORD})
        updated = await root.call("template.update", update, RunTemplate)
        stack = replace(stack, client=root)  # the company is closed now
        job = await _failed_job(stack, created.id)

        async def buried() -> int | None:
            listed = await root.call("dlq.list", DeadLetterQuery(company="demo"), DeadLetterList)
            return next((d.id for d in listed.dead_letters if d.job_id == job.id), None)

        letter = await eventually(buried, 20.0, "the job's dead letter")
        yield Demo(stack, root, rita, created.id, job.id, letter, updated)


async def test_no_reply_of_the_api_shows_the_password(demo: Demo) -> None:
    template, job = api.TemplateRef(id=demo.template), api.JobRef(id=demo.job)
    asked = [  # each with what shows the reply is about the template
        ("template.get", template, URL),
        ("template.list", api.TemplateQuery(company="demo"), URL),
        ("template.list", api.TemplateQuery(), URL),
        ("template.env", template, URL),
        ("job.get", job, "argv0"),
        ("job.list", api.JobQuery(company="demo"), "argv0"),
        ("dlq.list", DeadLetterQuery(company="demo"), demo.job),
        ("dlq.get", DeadLetterRef(id=demo.letter), URL),
    ]
    for client in (demo.rita, demo.root):
        for op, request, about in asked:
            reply = await demo.ask(client, op, request)
            assert about in reply and PASSWORD not in reply, (op, reply)
        shown = await client.call("template.get", template, RunTemplate)
        assert shown.env == {"ABRA_URL": URL, "ABRA_PASSWORD": "********"}
        letter = await client.call("dlq.get", DeadLetterRef(id=demo.letter), DeadLetterRecord)
        message = json.loads(letter.payload)
        assert message["env"] == {"ABRA_URL": URL} and message["secrets"] == ["ABRA_PASSWORD"]
        assert message["argv"][-1] == "{ABRA_PASSWORD}" and message["job_id"] == demo.job
        job_argv = (await client.call("job.get", job, JobRecord)).argv
        assert job_argv[-1] == "{ABRA_PASSWORD}"
    assert demo.changed.env == {"ABRA_URL": URL, "ABRA_PASSWORD": "********"}, "as the change answered"
    for op in ("template.pause", "template.resume"):
        assert PASSWORD not in await demo.ask(demo.root, op, template), op

    replayed = await demo.root.call(
        "dlq.replay", DeadLetterRef(id=demo.letter), OPERATIONS["dlq.replay"].reply
    )
    again = await demo.stack.final_job(replayed.job_id)
    assert (again.attempt, again.stdout) == (2, RAN), "the replay ran with the password itself"
    assert PASSWORD not in await demo.ask(demo.root, "template.delete", template)


async def test_no_command_shows_the_password_to_a_reader(demo: Demo) -> None:
    env = clean_env(JETJOBS_NATS_URL=demo.stack.nats_url, JETJOBS_ACTOR="rita")
    commands = [
        ("--json", "template", "show", str(demo.template)),
        ("template", "show", str(demo.template)),
        ("template", "list", "--json"),
        ("template", "list", "--company", "demo", "--json"),
        ("--json", "job", "show", demo.job),
        ("job", "show", demo.job),
        ("dlq", "show", str(demo.letter)),
        ("--json", "dlq", "show", str(demo.letter)),
    ]
    for command in commands:
        result = await jetjobs(*command, env=env)
        assert result.code == 0, (command, result)
        assert "ABRA_PASSWORD" in result.out and PASSWORD not in result.out, (command, result.out)
