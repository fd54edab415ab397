"""The command line against a running system: happy paths and every user mistake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.acceptance.cli import Result, clean_env, jetjobs
from tests.fixtures import app_files
from tests.stack import Stack, running_stack


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
    one_line_error(await jetjobs("company", "create", "Not A Code", env=env), "company codes are lowercase")
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
