"""The tenants commands against real servers: credentials, merged env, artifacts,
export, actors and audit, API tokens, containers and per-company executors."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from store.credentials import new_key
from tests import engine_standin
from tests.acceptance.cli import Result, clean_env, jetjobs
from tests.integration.tenants_stack import keyring, tenant_stack
from tests.stack import Stack

SECRET = "cli-secret-0417"
IMAGE = "docker.io/library/busybox:stable"
SCRIPT = 'echo "pw=$API_PASSWORD region=$REGION"; printf "r\\000e" > report.bin'


def one_line_error(result: Result, expected: str) -> None:
    assert result.code == 1, result
    lines = result.err.strip().splitlines()
    assert lines and lines[-1].startswith("jetjobs: error: ") and expected in lines[-1], result.err
    assert "Traceback" not in result.err


async def ok(*args: str, env: dict[str, str]) -> Result:
    result = await jetjobs(*args, env=env)
    assert result.code == 0, result
    return result


@pytest.fixture
async def boxed(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Stack, Path]]:
    """A store with a secret key and an executor running jobs in containers of a stand-in engine."""
    folder = tmp_path / "engine"
    engine = engine_standin.install(folder)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in engine_standin.environment(folder).items():
            patch.setenv(name, value)
        ring = keyring(new_key())
        async with tenant_stack(
            nats_url, database_url, ring, runner="docker", container_engine=str(engine)
        ) as stack:
            yield stack, folder


async def test_credentials_env_artifacts_export_actors_and_audit(
    boxed: tuple[Stack, Path], tmp_path: Path
) -> None:
    stack, engine = boxed
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url, JETJOBS_ACTOR="admin", API_PASSWORD=SECRET)
    await ok("company", "create", "acme", env=env)
    document = {
        "name": "Reporter",
        "uuid": "0b7c9d2e-8f7a-4c1e-9a55-3d2f1e0c4b6a",
        "executable": "sh",
        "cmdparams": f"-c '{SCRIPT}'",
        "ociimage": IMAGE,
        "environment": {
            "API_PASSWORD": {"type": "password", "required": True},
            "REGION": {"type": "string", "defval": "eu"},
        },
        "artifacts": ["report.bin"],
    }
    app_file = tmp_path / "reporter.multiflexi.app.json"
    app_file.write_text(json.dumps(document))
    await ok("app", "import", str(app_file), env=env)
    created = await ok(
        "--json", "template", "create", "--name", "nightly", "--app", document["uuid"],
        "--company", "acme", "--env", "REGION=us", env=env,
    )  # fmt: skip
    template = str(json.loads(created.out)["id"])

    one_line_error(
        await jetjobs("credentials", "set", "acme", "abra", "NOVALUE", env=env), "expected KEY=VALUE"
    )
    one_line_error(
        await jetjobs("credentials", "set", "acme", "abra", "--from-env", "NOT_SET_ANYWHERE", env=env),
        "--from-env NOT_SET_ANYWHERE",
    )
    stored = await ok(
        "credentials", "set", "acme", "abra", "--from-env", "API_PASSWORD", "--kind", "api", env=env
    )
    assert "acme/abra" in stored.out and SECRET not in stored.out
    listed = await ok("credentials", "list", "acme", env=env)
    assert "abra" in listed.out and "API_PASSWORD" in listed.out and SECRET not in listed.out
    await ok("credentials", "assign", template, "abra", env=env)

    merged = await ok("template", "env", template, env=env)
    rows = {line.split()[0]: line for line in merged.out.splitlines() if line.strip()}
    assert "********" in rows["API_PASSWORD"] and "credential abra" in rows["API_PASSWORD"]
    assert " us " in f" {rows['REGION']} " and "template" in rows["REGION"]
    assert SECRET not in merged.out

    run = await ok("--json", "job", "run", template, "--wait", env=env)
    job = json.loads(run.out)
    assert job["status"] == "processed" and job["stdout"] == "pw=******** region=us\n"
    assert SECRET not in run.out
    call = [c for c in engine_standin.calls(engine) if c["argv"][1] == "run"][-1]  # type: ignore[index]
    assert call["image"] == IMAGE

    listing = await ok("job", "artifacts", job["id"], env=env)
    assert "report.bin" in listing.out
    out = tmp_path / "downloaded"
    await ok("job", "artifacts", job["id"], "--out", str(out), env=env)
    assert (out / "report.bin").read_bytes() == b"r\x00e"
    in_the_way = out / "report.bin"
    one_line_error(
        await jetjobs("job", "artifacts", job["id"], "--out", str(in_the_way), env=env),
        f"--out {in_the_way}: a file is in the way; give a folder",
    )
    one_line_error(
        await jetjobs("job", "artifacts", job["id"], "--out", str(in_the_way / "sub"), env=env),
        f"--out {in_the_way / 'sub'}: cannot make the folder: Not a directory",
    )
    assert in_the_way.read_bytes() == b"r\x00e"

    exported = json.loads((await ok("app", "export", document["uuid"], env=env)).out)
    assert exported["uuid"] == document["uuid"] and exported["ociimage"] == IMAGE
    assert exported["environment"]["API_PASSWORD"]["type"] == "password"

    await ok("actor", "grant", "acme", "admin", "admin", env=env)
    actors = await ok("actor", "list", "acme", env=env)
    assert "admin" in actors.out
    outsider = env | {"JETJOBS_ACTOR": "mallory"}
    one_line_error(
        await jetjobs("credentials", "list", "acme", env=outsider),
        "actor 'mallory' may not read in company 'acme'",
    )
    one_line_error(
        await jetjobs("job", "logs", job["id"], env=outsider),
        "actor 'mallory' may not read in company 'acme'",
    )
    audit = await ok("audit", "--company", "acme", env=env)
    assert "credential.set" in audit.out and "actor.grant" in audit.out and SECRET not in audit.out


async def test_tokens_bootstrap_issue_use_and_revoke(nats_url: str, database_url: str) -> None:
    env = clean_env(JETJOBS_NATS_URL=nats_url, JETJOBS_DATABASE_URL=database_url)
    boot = await ok("actor", "token", "create", "root", "--admin", "--bootstrap", "--note", "first", env=env)
    root = boot.out.splitlines()[0]
    assert root.startswith("jjt_") and "not shown again" in boot.out
    async with tenant_stack(nats_url, database_url, None, require_tokens=True, token=root):
        one_line_error(await jetjobs("company", "list", env=env), "requires an API token")
        as_root = env | {"JETJOBS_API_TOKEN": root}
        await ok("company", "create", "acme", env=as_root)
        issued = await ok("--json", "actor", "token", "create", "alice", env=as_root)
        alice = json.loads(issued.out)
        as_alice = env | {"JETJOBS_API_TOKEN": alice["token"]}
        assert "acme" in (await ok("company", "list", env=as_alice)).out
        one_line_error(
            await jetjobs("actor", "token", "create", "bob", env=as_alice),
            "only an actor with an admin token",
        )
        tokens = await ok("actor", "token", "list", env=as_root)
        assert "alice" in tokens.out and "root" in tokens.out and alice["token"] not in tokens.out
        await ok("actor", "token", "revoke", str(alice["info"]["id"]), env=as_root)
        one_line_error(await jetjobs("company", "list", env=as_alice), "was revoked")
        one_line_error(
            await jetjobs("company", "list", env=env | {"JETJOBS_API_TOKEN": "jjt_made_up"}),
            "unknown API token",
        )


async def test_a_bind_only_company_executor_from_the_command_line(nats_url: str, database_url: str) -> None:
    env = clean_env(JETJOBS_NATS_URL=nats_url, JETJOBS_METRICS_PORT="0", JETJOBS_LOG_LEVEL="error")
    async with tenant_stack(nats_url, database_url, None, pool="spare") as stack:
        executor = ("executor", "--company", "acme", "--pool", "solo", "--bind-only")
        one_line_error(await jetjobs(*executor, env=env), "jetjobs company consumer acme --pool solo")
        one_line_error(await jetjobs("company", "consumer", "Not A Code", env=env), "is not valid")
        one_line_error(await jetjobs("company", "consumer", "acme", env=env), "unknown company 'acme'")
        await stack.company("acme")
        made = await ok("company", "consumer", "acme", "--pool", "solo", env=env)
        assert "exec_solo__acme" in made.out and "--bind-only" in made.out

        app = await stack.app("-c 'echo served by $JETJOBS_COMPANY'")
        template = await stack.template(name="t", app=str(app.app.id), company="acme", pool="solo")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "jetjobs", *executor, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            job = await stack.final_job((await stack.run(template.id)).job_id, timeout=30)
            assert job.status.value == "processed" and job.stdout == "served by acme\n", job.reason
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0 and b"Traceback" not in err, err
