"""The command line against a running system: happy paths and every user mistake."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
from nats.js.errors import NotFoundError

from contracts import api
from contracts import subjects as s
from contracts.models import RunTemplate
from store.credentials import new_key
from tests.acceptance.cli import Result, clean_env, jetjobs
from tests.fixtures import app_files
from tests.integration.tenants_stack import keyring, tenant_stack
from tests.stack import Stack, running_stack

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
async def stack(nats_url: str, database_url: str):  # type: ignore[no-untyped-def]
    async with running_stack(nats_url, database_url, scheduler=False) as running:
        yield running


def one_line_error(result: Result, expected: str) -> None:
    assert result.code == 1, result
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("jetjobs: error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.err


async def test_real_multiflexi_apps_import_and_bad_files_are_refused(stack: Stack, tmp_path: Path) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    result = await jetjobs("app", "import", *map(str, app_files()), env=env)
    assert result.code == 0, result
    assert result.out.count("imported ") == len(app_files())

    again = await jetjobs("app", "import", str(app_files()[0]), env=env)
    assert "updated " in again.out

    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"name": "no program"}))
    one_line_error(await jetjobs("app", "import", str(broken), env=env), f"{broken}: executable: missing")
    broken.write_text("{not json")
    one_line_error(await jetjobs("app", "import", str(broken), env=env), "not valid JSON")

    listed = json.loads((await jetjobs("--json", "app", "list", env=env)).out)
    assert len(listed) == len(app_files())


async def test_job_run_wait_prints_the_outcome_and_exit_status(stack: Stack) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    assert (await jetjobs("company", "create", "acme", "--name", "ACME", env=env)).code == 0
    good = await stack.app("-c 'echo all good'")
    bad = await stack.app("-c 'exit 4'")
    ok_id = (await stack.template(name="ok", app=good.app.uuid, company="acme")).id
    fail_id = (await stack.template(name="fail", app=bad.app.uuid, company="acme")).id

    result = await jetjobs("job", "run", str(ok_id), "--wait", env=env)
    assert result.code == 0, result
    assert "processed" in result.out and "all good" in result.out

    result = await jetjobs("--json", "job", "run", str(fail_id), "--wait", env=env)
    assert result.code == 1
    record = json.loads(result.out)
    assert (record["status"], record["kind"], record["exit_code"]) == ("error", "exit", 4)

    # settings go before or after the command
    listing = json.loads((await jetjobs("job", "list", "--company", "acme", "--json", env=env)).out)
    assert {j["status"] for j in listing} == {"processed", "error"}
    shown = await jetjobs("job", "show", record["id"], env=env)
    assert record["id"] in shown.out and "exit code 4" in shown.out


async def test_job_run_with_a_key_runs_once_however_often_it_is_sent(stack: Stack) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    await stack.company("acme")
    once = await stack.app("-c 'echo ran'")
    template = (await stack.template(name="once", app=once.app.uuid, company="acme")).id

    first = await jetjobs("--json", "job", "run", str(template), "--key", "deploy-7", "--wait", env=env)
    assert first.code == 0, first
    job = json.loads(first.out)["id"]
    again = await jetjobs("job", "run", str(template), "--key", "deploy-7", env=env)
    assert again.code == 0, again
    assert again.out.strip() == (
        f"job {job} of company acme was queued before with key 'deploy-7': "
        "not run again (use another key for another run)"
    )
    listing = json.loads((await jetjobs("--json", "job", "list", "--company", "acme", env=env)).out)
    assert [j["id"] for j in listing] == [job]
    one_line_error(
        await jetjobs("job", "run", str(template), "--key", "", env=env), "key: String should have at least"
    )


async def test_bad_input_is_one_clear_line_and_writes_nothing(stack: Stack) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    await stack.company("acme")
    app = await stack.app("-c true")
    create = ("template", "create", "--name", "t", "--app", app.app.uuid, "--company", "acme")

    one_line_error(await jetjobs(*create, "--cron", "99 * * * *", env=env), "invalid cron expression")
    one_line_error(await jetjobs(*create, "--interval", "c", env=env), "needs a cron expression")
    one_line_error(
        await jetjobs(*create, "--interval", "d", "--timezone", "Nowhere/City", env=env), "unknown timezone"
    )
    one_line_error(
        await jetjobs(
            "template", "create", "--name", "t", "--app", app.app.uuid, "--company", "nope", env=env
        ),
        "unknown company 'nope'",
    )
    one_line_error(
        await jetjobs("template", "create", "--name", "t", "--app", "12345", "--company", "acme", env=env),
        "unknown application '12345'",
    )
    one_line_error(
        await jetjobs("company", "create", "Not A Code", env=env), "company code 'Not A Code' is not valid"
    )
    one_line_error(await jetjobs("company", "create", "acme", env=env), "already exists")
    one_line_error(await jetjobs("job", "show", "no-such-job", env=env), "unknown job 'no-such-job'")

    unknown_code = await jetjobs(*create, "--interval", "q", env=env)
    assert (
        unknown_code.code == 2
        and "invalid choice" in unknown_code.err
        and "Traceback" not in unknown_code.err
    )

    templates = json.loads((await jetjobs("--json", "template", "list", env=env)).out)
    assert templates == []


async def test_unreachable_nats_is_a_clear_error() -> None:
    env = clean_env(JETJOBS_NATS_URL="nats://127.0.0.1:1")
    one_line_error(
        await jetjobs("company", "list", env=env, timeout=30), "cannot reach NATS at nats://127.0.0.1:1"
    )
    bad = await jetjobs("company", "list", env=clean_env(JETJOBS_NATS_URL="127.0.0.1:4222"))
    one_line_error(bad, "is not a valid URL")


async def test_a_store_without_its_database_is_a_clear_error() -> None:
    env = clean_env(JETJOBS_DATABASE_URL="postgresql://jj:secret@127.0.0.1:1/none", JETJOBS_METRICS_PORT="0")
    result = await jetjobs("store", env=env, timeout=30)
    one_line_error(result, "cannot use PostgreSQL at postgresql://jj:***@127.0.0.1:1/none")
    assert "secret" not in result.err


async def test_schema_export_writes_json_schemas(tmp_path: Path) -> None:
    result = await jetjobs("schema", "export", str(tmp_path / "schemas"), env=clean_env())
    assert result.code == 0, result
    assert (tmp_path / "schemas" / "job-message.schema.json").exists()


async def _template(stack: Stack, env: dict[str, str], *options: str) -> str:
    """A template of a fresh app in company acme, made with the CLI; its id."""
    app = await stack.app("-c true")
    made = await jetjobs(
        "--json",
        "template",
        "create",
        "--name",
        "t",
        "--app",
        app.app.uuid,
        "--company",
        "acme",
        *options,
        env=env,
    )
    assert made.code == 0, made
    return str(json.loads(made.out)["id"])


async def test_template_update_changes_single_env_keys_and_show_tells_all(stack: Stack) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    await stack.company("acme")
    tid = await _template(
        stack, env, "--env", "A=1", "--env", "B=2", "--retries", "2", "--misfire", "catch_up"
    )

    async def template_env(*update: str) -> dict[str, str]:
        result = await jetjobs("--json", "template", "update", tid, *update, env=env)
        assert result.code == 0, result
        return json.loads(result.out)["env"]  # type: ignore[no-any-return]

    assert await template_env("--env", "C=3") == {"A": "1", "B": "2", "C": "3"}
    assert await template_env("--unset-env", "A", "--env", "B=22", "--unset-env", "NONE") == {
        "B": "22",
        "C": "3",
    }
    assert await template_env("--replace-env", "--env", "Z=9") == {"Z": "9"}
    assert await template_env("--replace-env") == {}
    assert await template_env("--env", "K=v") == {"K": "v"}

    shown = await jetjobs("template", "show", tid, env=env)
    assert shown.code == 0, shown
    for line in (
        f"template     {tid} (t)   company acme",
        "schedule     manual only (interval n)",
        "state        active, not paused",
        "pool         default   retries 2",
        "timeouts     3600 s to be taken, 30 s to acknowledge, 3600 s to the result",
        "policies     overlap forbid, misfire catch_up, catch-up limit 10, jitter 0 s",
        "env          K=v",
        "credentials  -",
    ):
        assert line in shown.out.splitlines(), shown.out
    assert (await jetjobs("template", "pause", tid, env=env)).code == 0
    paused = await jetjobs("template", "show", tid, env=env)
    assert "state        active, PAUSED (slots are skipped)" in paused.out.splitlines(), paused.out
    assert json.loads((await jetjobs("--json", "template", "show", tid, env=env)).out)["paused"] is True


async def test_concurrent_env_updates_keep_every_key(stack: Stack) -> None:
    await stack.company("acme")
    app = await stack.app("-c true")
    made = await stack.template(name="t", app=app.app.uuid, company="acme", env={"A": "1"})

    async def put(key: str) -> None:
        update = api.TemplateUpdate(id=made.id, set_env={key: key.lower()}, unset_env=["A"])
        await stack.client.call("template.update", update, RunTemplate)

    keys = [f"K{i}" for i in range(12)]
    await asyncio.gather(*(put(k) for k in keys))
    stored = await stack.client.call("template.get", api.TemplateRef(id=made.id), RunTemplate)
    assert stored.env == {k: k.lower() for k in keys}


async def test_a_request_over_the_servers_max_payload_is_one_line(stack: Stack) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    await stack.company("acme")
    app = await stack.app("-c true")
    big = [f"--env=V{i}={'x' * 110_000}" for i in range(10)]
    result = await jetjobs(
        "template", "create", "--name", "big", "--app", app.app.uuid, "--company", "acme", *big, env=env
    )
    one_line_error(result, "template.create: the request is ")
    assert "bytes and the NATS server takes at most 1048576 (its max_payload): send less" in result.err


async def test_backfill_without_a_schedule_says_how_to_run_it_now(stack: Stack, tmp_path: Path) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    await stack.company("acme")
    tid = await _template(stack, env)
    span = ("--from", "2026-01-01T00:00:00Z", "--to", "2026-01-02T00:00:00Z")
    one_line_error(
        await jetjobs("template", "backfill", tid, *span, env=env),
        f"template {tid} has no schedule (interval n), so no past slots: run it now with `jetjobs job run {tid}`",
    )
    flow = tmp_path / "nightly.yaml"
    flow.write_text(
        f"name: nightly\ncompany: acme\nnodes:\n  - {{name: one, app: '{await _app_id(stack)}'}}\n"
    )
    assert (await jetjobs("flow", "save", str(flow), env=env)).code == 0
    made = await jetjobs(
        "--json", "template", "create", "--name", "f", "--flow", "nightly", "--company", "acme", env=env
    )
    fid = str(json.loads(made.out)["id"])
    one_line_error(
        await jetjobs("template", "backfill", fid, *span, env=env),
        "run it now with `jetjobs flow run acme/nightly`",
    )
    assert (await jetjobs("template", "update", fid, "--interval", "d", env=env)).code == 0
    one_line_error(
        await jetjobs("template", "backfill", fid, *span, env=env),
        "(run the flow with `jetjobs flow run acme/nightly`)",
    )


async def _app_id(stack: Stack) -> int:
    imported = await stack.app("-c true")
    assert imported.app.id is not None
    return imported.app.id


async def test_company_consumer_refuses_an_unknown_company_before_making_anything(stack: Stack) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    one_line_error(
        await jetjobs("company", "consumer", "nosuch", env=env),
        "unknown company 'nosuch': create it with `jetjobs company create nosuch`",
    )
    with pytest.raises(NotFoundError):
        await stack.bus.js.consumer_info(s.DISPATCH_STREAM, "exec_default__nosuch")
    await stack.company("acme")
    made = await jetjobs("company", "consumer", "acme", "--pool", "solo", "--json", env=env)
    assert made.code == 0, made
    assert json.loads(made.out) == {
        "company": "acme",
        "pool": "solo",
        "stream": s.DISPATCH_STREAM,
        "consumer": "exec_solo__acme",
    }
    await stack.bus.js.consumer_info(s.DISPATCH_STREAM, "exec_solo__acme")


PARTS = (
    "-c 'echo attempt $JETJOBS_ATTEMPT > part.txt; echo $JETJOBS_ATTEMPT > only$JETJOBS_ATTEMPT.txt;"
    " [ $JETJOBS_ATTEMPT = 1 ] && echo first > first.txt; exit 1'"
)


async def test_artifacts_of_several_attempts_are_not_written_over_each_other(
    stack: Stack, tmp_path: Path
) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    await stack.company("acme")
    document = {
        "name": "parts",
        "executable": "sh",
        "cmdparams": PARTS,
        "artifacts": ["part.txt", "only*.txt", "first.txt", "never.txt"],
    }
    app = await stack.client.call("app.import", api.AppImport(document=document), api.AppImported)
    template = await stack.template(name="parts", app=app.app.uuid, company="acme", retries=2)
    run = await jetjobs("--json", "job", "run", str(template.id), "--wait", env=env)
    job = json.loads(run.out)
    assert (run.code, job["attempt"]) == (1, 3), run

    out = tmp_path / "out"
    fetched = await jetjobs("job", "artifacts", job["id"], "--out", str(out), env=env)
    assert fetched.code == 0, fetched
    assert sorted(p.name for p in out.iterdir()) == [
        "first.txt",
        "only1.txt",
        "only2.txt",
        "only3.txt",
        "part.txt",
    ]
    assert (out / "part.txt").read_text() == "attempt 3\n"
    wrote = [line for line in fetched.out.splitlines() if line.startswith("wrote ")]
    assert len(wrote) == 5 and f"wrote {out / 'part.txt'} (10 bytes, attempt 3)" in wrote
    assert f"wrote {out / 'first.txt'} (6 bytes, attempt 1)" in wrote  # attempts 2 and 3 left none
    assert (
        "skipped never.txt (attempt 3): declared by the application, but the job left no such file"
        in fetched.out.splitlines()
    )
    assert fetched.out.splitlines()[-1] == (
        "not written, as a later attempt left a file of the same name: part.txt (attempt 1), part.txt (attempt 2);"
        " --attempt N writes N's"
    )

    again = await jetjobs("--json", "job", "artifacts", job["id"], "--out", str(tmp_path / "json"), env=env)
    saved = json.loads(again.out)
    assert [(a["name"], a["attempt"]) for a in saved] == [
        ("first.txt", 1),
        ("never.txt", 3),
        ("only1.txt", 1),
        ("only2.txt", 2),
        ("only3.txt", 3),
        ("part.txt", 3),
    ]
    assert saved[5]["file"] == str(tmp_path / "json" / "part.txt") and saved[5]["skipped"] is None
    assert saved[1]["file"] is None and "left no such file" in saved[1]["skipped"]

    blocked = tmp_path / "blocked"
    (blocked / "first.txt").mkdir(parents=True)  # a folder where the first file should go
    partly = await jetjobs("job", "artifacts", job["id"], "--out", str(blocked), env=env)
    assert partly.code == 1, partly
    assert (
        f"skipped first.txt (attempt 1): cannot write {blocked / 'first.txt'}: Is a directory" in partly.out
    )
    assert sorted(p.name for p in blocked.iterdir()) == sorted(
        ["first.txt", "only1.txt", "only2.txt", "only3.txt", "part.txt"]
    )
    assert "1 artifact(s) not written (first.txt)" in partly.err and "Traceback" not in partly.err

    first = tmp_path / "first"
    earlier = await jetjobs("job", "artifacts", job["id"], "--attempt", "1", "--out", str(first), env=env)
    assert earlier.code == 0, earlier
    assert sorted(p.name for p in first.iterdir()) == ["first.txt", "only1.txt", "part.txt"]
    assert (first / "part.txt").read_text() == "attempt 1\n"
    assert earlier.out.splitlines()[-1] == f"wrote {first / 'part.txt'} (10 bytes, attempt 1)"
    listed = await jetjobs("--json", "job", "artifacts", job["id"], "--attempt", "2", env=env)
    rows = {(a["name"], a["attempt"], a["missing"]) for a in json.loads(listed.out)}
    assert rows == {
        ("part.txt", 2, False),
        ("only2.txt", 2, False),
        ("first.txt", 2, True),
        ("never.txt", 2, True),
    }


async def _to_a_closed_pipe(*args: str, env: dict[str, str]) -> tuple[int, bytes]:
    """The command writing into a pipe whose reader has gone, like `| head -1` once it has its line."""
    read, write = os.pipe()
    os.close(read)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "jetjobs", *args, env=env, stdout=write, stderr=asyncio.subprocess.PIPE
        )
    finally:
        os.close(write)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, err


async def test_output_to_a_reader_that_left_ends_quietly(stack: Stack) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    await stack.company("acme")
    tid = await _template(stack, env)
    for args in (("job", "list"), ("template", "explain", tid), ("template", "show", tid)):
        assert await _to_a_closed_pipe(*args, env=env) == (1, b"")


@pytest.fixture
async def keyed(nats_url: str, database_url: str):  # type: ignore[no-untyped-def]
    async with tenant_stack(nats_url, database_url, keyring(new_key())) as running:
        yield running


def readme_line(words: str) -> list[str]:
    """The arguments of the README's one `jetjobs` line that holds `words`."""
    lines = [line for line in README.read_text().splitlines() if f"jetjobs {words}" in line]
    assert len(lines) == 1, lines
    return lines[0].split("#")[0].split("jetjobs ", 1)[1].split()


async def test_the_readmes_credentials_line_works_and_template_show_names_the_set(keyed: Stack) -> None:
    env = clean_env(JETJOBS_NATS_URL=keyed.nats_url, ABRAFLEXI_PASSWORD="pw-0417")
    await keyed.company("acme")
    line = readme_line("credentials set")
    assert line.index("--from-env") < line.index("ABRAFLEXI_LOGIN=admin")  # a value after the option
    stored = await jetjobs(*line, env=env)
    assert stored.code == 0, stored
    assert stored.out == "stored credential set acme/abraflexi: ABRAFLEXI_LOGIN, ABRAFLEXI_PASSWORD\n"
    other_order = ["credentials", "set", "acme", "other", "K=1", "--from-env", "ABRAFLEXI_PASSWORD"]
    assert (await jetjobs(*other_order, env=env)).code == 0

    tid = await _template(keyed, env, "--env", "ABRAFLEXI_LOGIN=me")
    assert (await jetjobs("credentials", "assign", tid, "abraflexi", env=env)).code == 0
    shown = await jetjobs("template", "show", tid, env=env)
    assert "credentials  abraflexi (ABRAFLEXI_PASSWORD)" in shown.out.splitlines(), shown.out
    assert "env          ABRAFLEXI_LOGIN=me" in shown.out.splitlines() and "pw-0417" not in shown.out
