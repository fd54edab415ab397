"""Names and sizes have limits when things are made or changed: a name of megabytes,
or a template or application larger than a NATS message, would make its list fail."""

from __future__ import annotations

import pytest

from contracts import api
from contracts import subjects as s
from contracts.api import ApiFailure
from contracts.models import Company, RunTemplate, TemplateSpec
from store.limits import LARGEST, LONGEST
from tests.stack import Stack, running_stack

pytestmark = pytest.mark.timeout(60)

LONG = "n" * (LONGEST + 1)


@pytest.fixture
async def stack(nats_url: str, database_url: str):  # type: ignore[no-untyped-def]
    async with running_stack(nats_url, database_url, scheduler=False) as running:
        yield running


async def refused(stack: Stack, op: str, request: object, reply: type) -> str:
    with pytest.raises(ApiFailure) as caught:
        await stack.client.call(op, request, reply)  # type: ignore[arg-type]
    assert caught.value.code == 400
    return caught.value.message


async def test_names_over_the_limit_are_refused_with_their_length(stack: Stack) -> None:
    message = await refused(stack, "company.create", Company(code="acme", name=LONG), Company)
    assert (
        message == f"company name is {LONGEST + 1} characters long: give one of at most {LONGEST} characters"
    )
    await stack.client.call("company.create", Company(code="acme", name="n" * LONGEST), Company)
    document = {"name": LONG, "executable": "true"}
    assert "application name is" in await refused(
        stack, "app.import", api.AppImport(document=document), api.AppImported
    )
    app = await stack.app("-c true")
    spec = {"name": LONG, "app": str(app.app.id), "company": "acme"}
    assert "template name is" in await refused(
        stack, "template.create", TemplateSpec.model_validate(spec), RunTemplate
    )
    template = await stack.template(name="ok", app=str(app.app.id), company="acme")
    update = api.TemplateUpdate(id=template.id, changes={"name": LONG})
    assert "template name is" in await refused(stack, "template.update", update, RunTemplate)
    kept = api.TemplateUpdate(id=template.id, changes={"cron": "0 * * * *", "interv": "c"})
    assert (await stack.client.call("template.update", kept, RunTemplate)).name == "ok"


async def test_templates_and_applications_larger_than_the_limit_are_refused(stack: Stack) -> None:
    """An application of 60,000 empty variables (700 kB sent, 5 MB as stored) or a
    template with 300 kB of environment would have made their lists fail for everyone."""
    await stack.client.call("company.create", Company(code="acme", name="ACME"), Company)
    document = {"name": "wide", "executable": "true", "environment": {f"V{i}": {} for i in range(60_000)}}
    message = await refused(stack, "app.import", api.AppImport(document=document), api.AppImported)
    assert message.startswith("application 'wide' takes ") and f"at most {LARGEST} are kept" in message
    listed = await stack.client.call("app.list", api.AppQuery(), api.AppList)
    assert [a.name for a in listed.apps] == [], "nothing of a refused import is stored"
    app = await stack.app("-c true")
    spec = {"name": "big", "app": str(app.app.id), "company": "acme", "env": {"BLOB": "x" * 300_000}}
    assert "template 'big' takes " in await refused(
        stack, "template.create", TemplateSpec.model_validate(spec), RunTemplate
    )
    near = await stack.template(name="near", app=str(app.app.id), company="acme", env={"BLOB": "x" * 200_000})
    update = api.TemplateUpdate(id=near.id, set_env={"MORE": "y" * 100_000})
    assert f"template {near.id} takes " in await refused(stack, "template.update", update, RunTemplate)
    page = await stack.client.call("template.list", api.TemplateQuery(company="acme"), api.TemplateList)
    assert [t.name for t in page.templates] == ["near"]


async def test_a_run_whose_job_message_would_not_fit_in_a_nats_message_is_refused_413(stack: Stack) -> None:
    """A value the command line uses travels twice (in the arguments and in the env):
    a run given 600 kB of it made a message NATS refuses, answered as an internal error."""
    await stack.client.call("company.create", Company(code="acme", name="ACME"), Company)
    app = await stack.app("-c 'echo {BLOB}'", env={"BLOB": {"type": "string"}})
    template = await stack.template(name="echo", app=str(app.app.id), company="acme")
    with pytest.raises(ApiFailure) as caught:
        await stack.run(template.id, BLOB="x" * 600_000)
    assert caught.value.code == 413, caught.value
    assert "more than one NATS message may carry" in caught.value.message
    assert "give the run shorter env values" in caught.value.message
    assert (await stack.run(template.id, BLOB="fits")).job_id, "a run that fits is queued"


async def test_an_actor_header_longer_than_an_actor_name_may_be_is_refused(stack: Stack) -> None:
    """It was written as given to the audit log of every change it made."""
    subject = s.api_subject("company.create")
    payload = Company(code="acme", name="ACME").model_dump_json().encode()
    msg = await stack.bus.nc.request(subject, payload, timeout=10, headers={"Jetjobs-Actor": "a" * 50_000})
    headers = msg.headers or {}
    assert headers.get("Nats-Service-Error-Code") == "400", headers
    assert headers["Nats-Service-Error"] == (
        "company.create: the Jetjobs-Actor header is 50,000 characters long: give at most 200"
    )
    msg = await stack.bus.nc.request(subject, payload, timeout=10, headers={"Jetjobs-Actor": "a" * 200})
    assert "Nats-Service-Error-Code" not in (msg.headers or {}), msg.headers
