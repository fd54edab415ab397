"""Environment variable names are checked where they enter. A template, a run or a
flow with a name like `A=B`, an empty one, `BAD VAR`, or a value with a NUL byte used
to be taken, and every job of it then ended `error invalid: cannot start 'sh' …
illegal environment variable name` without naming the variable (a scheduled one
filling the dead letters); now the request is refused with a 400 naming it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from contracts import subjects as s
from contracts.api import ApiError, AppList, AppQuery
from contracts.models import TemplateSpec
from tests.acceptance.cli import clean_env, jetjobs
from tests.stack import Stack, running_stack

BAD_NAMES = ["A=B", "", "BAD VAR", "1ST"]
NAME_RULE = "letters, digits and _ only"


@pytest.fixture
async def stack(nats_url: str, database_url: str):  # type: ignore[no-untyped-def]
    async with running_stack(nats_url, database_url, scheduler=False) as running:
        await running.company("acme")
        yield running


async def _send(stack: Stack, op: str, body: dict[str, Any]) -> tuple[int, str]:
    """A request as any NATS client sends it (the Python models would refuse to build
    it), and the reply's code (200 when answered) and error text."""
    msg = await stack.bus.nc.request(s.api_subject(op), json.dumps(body).encode(), timeout=10)
    if "Nats-Service-Error-Code" not in (msg.headers or {}):
        return 200, ""
    error = ApiError.model_validate_json(msg.data)
    return error.code, error.error


def _names_it(reply: tuple[int, str], name: str) -> bool:
    code, text = reply
    return code == 400 and f"{name!r} is not an environment variable name" in text and NAME_RULE in text


async def test_bad_names_and_values_are_refused_where_they_enter(stack: Stack) -> None:
    app = await stack.app("-c true")
    spec = {"name": "nightly", "app": str(app.app.id), "company": "acme"}
    template = await stack.template(**spec, env={"API_TOKEN": "t", "_x1": "y"})
    flow = {"name": "f", "company": "acme", "nodes": [{"name": "a", "app": str(app.app.id)}]}
    for bad in BAD_NAMES:
        other = {**spec, "name": f"other {bad}", "env": {bad: "1"}}
        assert _names_it(await _send(stack, "template.create", other), bad)
        update = {"id": template.id, "set_env": {bad: "1"}}
        assert _names_it(await _send(stack, "template.update", update), bad)
        replace = {"id": template.id, "changes": {"env": {bad: "1"}}}
        assert _names_it(await _send(stack, "template.update", replace), bad)
        assert _names_it(await _send(stack, "template.run", {"id": template.id, "env": {bad: "1"}}), bad)
        assert _names_it(await _send(stack, "flow.validate", {**flow, "env_vars": {bad: "1"}}), bad)
        node = {"name": "a", "app": str(app.app.id), "env": {bad: "1"}}
        assert _names_it(await _send(stack, "flow.save", {**flow, "nodes": [node]}), bad)
    code, text = await _send(stack, "template.run", {"id": template.id, "env": {"PATH_X": "a\x00b"}})
    assert code == 400 and "env.PATH_X" in text and "NUL" in text, text
    assert (await _send(stack, "template.run", {"id": template.id, "env": {"OK_1": "fine"}}))[0] == 200
    schema = TemplateSpec.model_json_schema()["properties"]["env"]
    assert schema["propertyNames"] == {
        "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
        "not": {"enum": ["JETJOBS_ATTEMPT", "JETJOBS_COMPANY", "JETJOBS_JOB_ID", "JETJOBS_RESULT_FILE"]},
    }


async def test_a_bad_name_on_the_command_line_is_refused_before_anything_runs(stack: Stack) -> None:
    app = await stack.app("-c true")
    template = await stack.template(name="nightly", app=str(app.app.id), company="acme")
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    refused = await jetjobs("job", "run", str(template.id), "--env", "BAD VAR=1", env=env)
    assert refused.code == 1 and "'BAD VAR' is not an environment variable name" in refused.err, refused
    assert await stack.jobs(company="acme") == []


async def test_a_variable_jetjobs_sets_for_every_job_is_refused_where_it_enters(stack: Stack) -> None:
    """`--env JETJOBS_JOB_ID=forged` used to be taken and listed as the template's
    while every job got its real id: now it is refused in one line saying why."""
    app = await stack.app("-c true")
    template = await stack.template(name="nightly", app=str(app.app.id), company="acme")
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    forged = await jetjobs("job", "run", str(template.id), "--env", "JETJOBS_JOB_ID=forged", env=env)
    assert forged.code == 1 and forged.err.count("\n") == 1, forged
    assert "JETJOBS_JOB_ID is set by jetjobs for every job and cannot be given" in forged.err, forged
    assert await stack.jobs(company="acme") == []
    update = await jetjobs("template", "update", str(template.id), "--env", "JETJOBS_RESULT_FILE=x", env=env)
    assert update.code == 1 and "JETJOBS_RESULT_FILE is set by jetjobs for every job" in update.err, update
    listed = await jetjobs("template", "env", str(template.id), env=env)
    assert listed.code == 0 and "JETJOBS_" not in listed.out, listed
    spec = {"name": "other", "app": str(app.app.id), "company": "acme", "env": {"JETJOBS_COMPANY": "x"}}
    code, text = await _send(stack, "template.create", spec)
    assert code == 400 and "JETJOBS_COMPANY is set by jetjobs for every job" in text, text
    flow = {"name": "f", "company": "acme", "env_vars": {"JETJOBS_ATTEMPT": "9"}}
    code, text = await _send(stack, "flow.save", {**flow, "nodes": [{"name": "a", "app": str(app.app.id)}]})
    assert code == 400 and "JETJOBS_ATTEMPT is set by jetjobs for every job" in text, text


async def test_a_variable_jetjobs_sets_is_refused_as_a_credential_field_or_an_app_variable(
    stack: Stack, tmp_path: Path
) -> None:
    """A credential field or an app's variable named JETJOBS_JOB_ID used to be taken and
    shown by `template env` while every job got the real value: now both are refused."""
    said = "is set by jetjobs for every job and cannot be given: remove it"
    values = {"API_TOKEN": "t", "JETJOBS_JOB_ID": "forged"}
    code, text = await _send(stack, "credential.set", {"company": "acme", "name": "x", "values": values})
    assert code == 400 and f"JETJOBS_JOB_ID {said}" in text, text
    document = {"name": "spoof", "executable": "true", "environment": {"JETJOBS_COMPANY": {"defval": "x"}}}
    code, text = await _send(stack, "app.import", {"document": document})
    assert code == 400 and f"environment.JETJOBS_COMPANY: JETJOBS_COMPANY {said}" in text, text
    assert [a.name for a in (await stack.client.call("app.list", AppQuery(), AppList)).apps] == []

    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    credential = await jetjobs("credentials", "set", "acme", "x", "JETJOBS_JOB_ID=forged", env=env)
    assert credential.code == 1 and credential.err.count("\n") == 1, credential
    assert f"JETJOBS_JOB_ID {said}" in credential.err, credential
    app_file = tmp_path / "spoof.json"
    app_file.write_text(json.dumps(document), encoding="utf-8")
    imported = await jetjobs("app", "import", str(app_file), env=env)
    assert imported.code == 1 and imported.err.count("\n") == 1, imported
    assert f"{app_file}: environment.JETJOBS_COMPANY: JETJOBS_COMPANY {said}" in imported.err, imported
