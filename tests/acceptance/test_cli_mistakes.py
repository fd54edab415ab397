"""User mistakes the command line must answer with one clear line, not a traceback:
text that is not UTF-8, config values of the wrong type, broken URLs; and what a
`job run --wait` that is interrupted says about the job it leaves running."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from contracts import subjects as s
from tests.acceptance.cli import clean_env, jetjobs, started
from tests.acceptance.test_cli import one_line_error
from tests.stack import Stack, eventually, running_stack

pytestmark = pytest.mark.timeout(90)

NOT_UTF8 = "\udcff"
"""A byte 0xff in an argument or variable, as Python hands it to the command."""

MISTAKES = [
    (["job", "run", "1", "--env", f"K={NOT_UTF8}"], {}, "--env K: the value is not valid UTF-8"),
    (["template", "update", "1", "--env", f"K={NOT_UTF8}"], {}, "--env K: the value is not valid UTF-8"),
    (["template", "update", "1", "--unset-env", NOT_UTF8], {}, "--unset-env: a variable name is not valid"),
    (
        ["template", "create", "--name", "x", "--app", "1", "--company", "acme", "--env", f"K={NOT_UTF8}"],
        {},
        "--env K: the value is not valid UTF-8",
    ),
    (["credentials", "set", "acme", "cs", f"K={NOT_UTF8}"], {}, "credential field K: the value is not valid"),
    (
        ["credentials", "set", "acme", "cs", "--from-env", "K"],
        {"K": NOT_UTF8},
        "--from-env K: the value is not",
    ),
    (["company", "list"], {"JETJOBS_API_TOKEN": NOT_UTF8}, "JETJOBS_API_TOKEN: the value is not valid UTF-8"),
    (["company", "list"], {"JETJOBS_ACTOR": NOT_UTF8}, "JETJOBS_ACTOR: the value is not valid UTF-8"),
    (["company", "list"], {"JETJOBS_EXECUTOR_ACTOR": NOT_UTF8}, "JETJOBS_EXECUTOR_ACTOR: the value is not"),
    (["status", "--config", "{binary}"], {}, "is not UTF-8 text: give a TOML file saved as UTF-8"),
    (["--nats-url", "nats://[::1", "status"], {}, "--nats-url 'nats://[::1' is not a valid URL"),
    (["status"], {"JETJOBS_NATS_URL": "nats://[::1"}, "JETJOBS_NATS_URL='nats://[::1' is not a valid URL"),
    (["--database-url", "postgresql://[::1", "store"], {}, "'postgresql://[::1' is not a valid URL"),
    (
        ["--metrics-port", "0", "store"],
        {
            "JETJOBS_SECRET_KEY_FILE": "{binary}",
            "JETJOBS_DATABASE_URL": "postgresql://u@127.0.0.1:1/x",
            "JETJOBS_NATS_URL": "nats://127.0.0.1:1",
        },
        "is not text: it holds base64 keys, one per line",
    ),
    (["status", "--config", "{listed_home}"], {}, 'home = ["x"] in config file'),
    (["status", "--config", "{numbered_level}"], {}, "give a string in quotes, not an integer"),
    (["schema", "export", ""], {}, "schema export: the folder is empty: name one"),
]


@pytest.mark.parametrize(("args", "extra", "expected"), MISTAKES)
async def test_a_mistake_is_one_line(
    args: list[str], extra: dict[str, str], expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {
        "binary": tmp_path / "binary.toml",
        "listed_home": tmp_path / "listed_home.toml",
        "numbered_level": tmp_path / "numbered_level.toml",
    }
    files["binary"].write_bytes(b"\xff\xfe = 1\n")
    files["listed_home"].write_text('home = ["x"]\n')
    files["numbered_level"].write_text("log_level = 3\n")
    named = {key: str(path) for key, path in files.items()}
    monkeypatch.chdir(tmp_path)  # a folder made by mistake would show up here
    env = clean_env(**{k: v.format(**named) for k, v in extra.items()})
    result = await jetjobs(*[arg.format(**named) for arg in args], env=env)
    one_line_error(result, expected)
    assert _names(tmp_path) == sorted(p.name for p in files.values())


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
async def stack(nats_url: str, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(nats_url, database_url, scheduler=False) as running:
        await running.company("acme")
        yield running


async def _template(stack: Stack, script: str) -> int:
    app = await stack.app(f"-c '{script}'")
    return (await stack.template(name="slow", app=app.app.uuid, company="acme")).id


async def _followers(stack: Stack) -> int:
    return (await stack.bus.js.stream_info(s.EVENTS_STREAM)).state.consumer_count


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
async def test_interrupted_wait_names_the_job_left_running(stack: Stack, signum: int, code: int) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    template_id = await _template(stack, "sleep 60")
    before = await _followers(stack)
    process = await started("--json", "job", "run", str(template_id), "--wait", env=env)
    try:
        await eventually(lambda: _more_followers(stack, before), 30, "the command to follow the job")
        process.send_signal(signum)
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    said = err.decode()
    (job_id,) = re.findall(r"job (\S+) is still queued or running", said)
    assert (process.returncode, out.decode(), said.splitlines()) == (
        code,
        "",
        [f"jetjobs: job {job_id} is still queued or running; stop it with `jetjobs job cancel {job_id}`"],
    )
    cancelled = await jetjobs("job", "cancel", job_id, env=env)
    assert cancelled.code == 0, cancelled
    assert (await stack.final_job(job_id)).final


async def _more_followers(stack: Stack, before: int) -> bool:
    return await _followers(stack) > before


async def test_template_active_takes_the_words_settings_take(stack: Stack) -> None:
    env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
    template_id = str(await _template(stack, "true"))
    for word, active in [("off", False), ("on", True)]:
        result = await jetjobs("--json", "template", "update", template_id, "--active", word, env=env)
        assert result.code == 0, result
        assert json.loads(result.out)["active"] is active
