"""A field the application declares secret (MultiFlexi `"type": "password"`) is
masked in everything its job prints, whichever layer set its value: the app's
default, the template's env or a run's override, not only a credential."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts.enums import Status
from contracts.flows import FlowRef, FlowRun, FlowRunRequest, FlowSpec
from contracts.subjects import EVENTS_STREAM, LOGS_STREAM
from store.credentials import new_key
from tests.stack import Stack, eventually, running_stack

from .tenants_stack import keyring, tenant_stack

DEFAULT, TEMPLATE, OVERRIDE = "app-pw-555", "tmpl-pw-777", "override-pw-999"
SCRIPT = 'printf "pw=%s arg=%s user=%s\\n" "$PASSWORD" "$1" "$USER_NAME"; printf "pw=%s\\n" "$PASSWORD" >&2'
ENV = {
    "PASSWORD": {"type": "password", "defval": DEFAULT},
    "USER_NAME": {"type": "string", "defval": "demo"},
}


async def _logged(js: JetStreamContext) -> bytes:
    """Every output chunk streamed live, as stored in the logs stream."""
    info = await js.stream_info(LOGS_STREAM)
    found = bytearray()
    for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
        try:
            found += (await js.get_msg(LOGS_STREAM, seq)).data or b""
        except NotFoundError:
            continue
    return bytes(found)


async def _printed(stack: Stack, template_id: int, **env: str) -> tuple[str, str]:
    job = await stack.final_job((await stack.run(template_id, **env)).job_id)
    assert job.status is Status.PROCESSED, job.reason
    assert job.stdout is not None and job.stderr is not None
    return job.stdout, job.stderr


async def test_a_password_field_is_masked_from_every_layer(nats_url: str, database_url: str) -> None:
    async with tenant_stack(nats_url, database_url, keyring(new_key())) as stack:
        await stack.company("acme")
        app = await stack.app(f"-c '{SCRIPT}' argv0 {{PASSWORD}}", env=ENV)
        plain = await stack.template(name="plain", app=str(app.app.id), company="acme")
        tuned = await stack.template(
            name="tuned", app=str(app.app.id), company="acme", env={"PASSWORD": TEMPLATE}
        )
        masked = ("pw=******** arg=******** user=demo\n", "pw=********\n")
        assert await _printed(stack, plain.id) == masked
        assert await _printed(stack, tuned.id) == masked
        assert await _printed(stack, tuned.id, PASSWORD=OVERRIDE) == masked
        logged = await _logged(stack.bus.js)
        assert b"user=demo" in logged and b"pw=********" in logged
        assert not any(value.encode() in logged for value in (DEFAULT, TEMPLATE, OVERRIDE))


async def test_a_flow_node_running_the_app_masks_it_too(nats_url: str, database_url: str) -> None:
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        await stack.company("acme")
        app = await stack.app(f"-c '{SCRIPT}' argv0 {{PASSWORD}}", env=ENV)
        node = {"name": "a", "app": app.app.uuid, "env": {"PASSWORD": TEMPLATE}}
        spec = FlowSpec.model_validate({"name": "secretive", "company": "acme", "nodes": [node]})
        run = await stack.client.call("flow.run", FlowRunRequest(spec=spec, launched_by="test"), FlowRun)

        async def node_job() -> str | None:
            found = await stack.client.call("flow.get", FlowRef(id=run.id), FlowRun)
            return found.nodes[0].job_id

        job = await stack.final_job(await eventually(node_job, 20.0, "the node's job"))
        assert (job.stdout, job.stderr) == ("pw=******** arg=******** user=demo\n", "pw=********\n")
        shown = await stack.client.call("flow.get", FlowRef(id=run.id), FlowRun)
        assert shown.spec is not None and shown.spec.nodes[0].env == {"PASSWORD": "********"}
        assert TEMPLATE not in shown.model_dump_json() and TEMPLATE not in run.model_dump_json()


RESULTS_SCRIPT = (
    'printf "{\\"token\\": \\"%s\\", \\"%s\\": \\"key\\"}" "$PASSWORD" "$PASSWORD" > "$JETJOBS_RESULT_FILE"'
)


async def test_a_secret_the_job_writes_to_its_results_is_masked(nats_url: str, database_url: str) -> None:
    """Results travel in the result event (a public subject), into the record and on to
    a flow's next steps: a secret in them is masked as it is in the output."""
    async with tenant_stack(nats_url, database_url, keyring(new_key())) as stack:
        await stack.company("acme")
        app = await stack.app(f"-c '{RESULTS_SCRIPT}'", env=ENV)
        template = await stack.template(
            name="telling", app=str(app.app.id), company="acme", env={"PASSWORD": TEMPLATE}
        )
        job = await stack.final_job((await stack.run(template.id)).job_id)
        assert job.status is Status.PROCESSED, job.reason
        assert job.attempts[-1].results == {"token": "********", "********": "key"}
        info = await stack.bus.js.stream_info(EVENTS_STREAM)
        for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
            assert TEMPLATE.encode() not in (await stack.bus.js.get_msg(EVENTS_STREAM, seq)).data
