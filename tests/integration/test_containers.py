"""Container runners: the exact engine command lines (checked with a recording
stand-in engine), the same lifecycle as native runs, a clear error when no
engine can be used, and a real container where a working engine exists."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from contracts import api
from contracts import tenants as t
from contracts.enums import ErrorKind, Status
from contracts.lifecycle import CancelReply
from executor.containers import ContainerLauncher, ContainerRunning
from executor.process import Aborted, Exited, Launch, NotRunnable, TimedOut
from store.credentials import new_key
from tests import engine_standin
from tests.stack import Stack, eventually

from .tenants_stack import keyring, tenant_stack

JOB = "6f0c1c9e-1111-4222-8333-944455556666"
IMAGE = "docker.io/library/busybox:stable"


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "engine"
    engine_standin.install(folder)
    for name, value in engine_standin.environment(folder).items():
        monkeypatch.setenv(name, value)
    yield folder


def _spec(cwd: Path, argv: list[str], **env: str) -> Launch:
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"), "JETJOBS_ATTEMPT": "1"}
    return Launch(argv, {**base, **env}, str(cwd), 65536, "test-runner", job_id=JOB, image=IMAGE)


def _launcher(engine: Path, kind: str = "docker") -> ContainerLauncher:
    return ContainerLauncher(
        "docker" if kind == "docker" else "podman", "test-runner", str(engine / "docker")
    )


async def _run(launcher: ContainerLauncher, spec: Launch, limit: float = 20.0) -> tuple[object, str]:
    started = await launcher(spec)
    assert isinstance(started, ContainerRunning), started
    loop = asyncio.get_running_loop()
    ending = await started.finish(loop.time() + limit, asyncio.Event(), 2.0)
    return ending, started.stdout.text()


async def test_docker_command_line_env_file_and_workdir(engine: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    spec = _spec(
        work,
        ["sh", "-c", 'echo "$GREETING $API_KEY"; pwd; echo made > out.txt'],
        GREETING="hello",
        API_KEY="k3y-secret",
        PEM="line1\nline2",
    )
    ending, stdout = await _run(_launcher(engine), spec)
    assert ending == Exited(0)
    assert stdout.splitlines() == ["hello k3y-secret", str(work)]
    assert (work / "out.txt").read_text() == "made\n", "the working directory is mounted"

    version, run = engine_standin.calls(engine)
    path = str(engine / "docker")
    assert version["argv"] == [path, "version"]
    argv = run["argv"]
    assert isinstance(argv, list)
    env_file = argv[argv.index("--env-file") + 1]
    assert argv == [
        path,
        "run",
        "--rm",
        "--name",
        f"jetjobs-{JOB}-1",
        "--label",
        f"jetjobs.job={JOB}",
        "--user",
        f"{os.getuid()}:{os.getgid()}",
        "--volume",
        f"{work}:{work}",
        "--workdir",
        str(work),
        "--env-file",
        env_file,
        "--env",
        "PEM",
        IMAGE,
        "sh",
        "-c",
        'echo "$GREETING $API_KEY"; pwd; echo made > out.txt',
    ]
    assert not str(env_file).startswith(str(work)), "the env file stays outside the mounted directory"
    assert run["env_file_mode"] == "0o600"
    passed = run["env"]
    assert isinstance(passed, dict)
    assert passed["API_KEY"] == "k3y-secret" and passed["PEM"] == "line1\nline2"
    assert "HOME" not in passed, "the executor's host paths are not passed into the image"
    assert not any("k3y-secret" in word for word in argv)
    assert not await asyncio.to_thread(os.path.exists, env_file), "the env file is removed after the run"


async def test_a_later_attempt_removes_a_lost_attempts_container_first(engine: Path, tmp_path: Path) -> None:
    launcher = _launcher(engine)
    lost = await launcher(_spec(tmp_path, ["sleep", "60"]))  # attempt 1, as if its executor died
    assert isinstance(lost, ContainerRunning)
    created = engine / "state" / f"jetjobs-{JOB}-1"
    await eventually(lambda: asyncio.to_thread(created.exists), what="the lost attempt's container")
    retry = replace(_spec(tmp_path, ["true"]), env={"JETJOBS_ATTEMPT": "3", "PATH": os.environ["PATH"]})
    ending, _ = await _run(launcher, retry)
    assert ending == Exited(0)
    assert await asyncio.wait_for(lost.wait(), 10) is not None, "the lost attempt's container is gone"
    await lost.close()
    path = str(engine / "docker")
    removes = [c["argv"] for c in engine_standin.calls(engine) if c["argv"][1] == "rm"]  # type: ignore[index]
    assert removes[0] == [path, "rm", "--force", f"jetjobs-{JOB}-1", f"jetjobs-{JOB}-2"]


async def test_podman_needs_no_user_mapping(engine: Path, tmp_path: Path) -> None:
    ending, _ = await _run(_launcher(engine, "podman"), _spec(tmp_path, ["true"]))
    assert ending == Exited(0)
    run = engine_standin.calls(engine)[-1]["argv"]
    assert isinstance(run, list) and "--user" not in run and run[1] == "run"


async def test_exit_status_is_the_commands(engine: Path, tmp_path: Path) -> None:
    ending, _ = await _run(_launcher(engine), _spec(tmp_path, ["sh", "-c", "exit 3"]))
    assert ending == Exited(3)
    assert [c["argv"][1] for c in engine_standin.calls(engine)] == ["version", "run"]  # type: ignore[index]


async def test_timeout_stops_and_removes_the_container_by_name(engine: Path, tmp_path: Path) -> None:
    launcher = _launcher(engine)
    started = await launcher(_spec(tmp_path, ["sleep", "60"]))
    assert isinstance(started, ContainerRunning)
    loop = asyncio.get_running_loop()
    begin = loop.time()
    ending = await started.finish(loop.time() + 0.5, asyncio.Event(), 1.0)
    assert ending == TimedOut()
    assert loop.time() - begin < 15
    path, name = str(engine / "docker"), f"jetjobs-{JOB}-1"
    commands = [c["argv"] for c in engine_standin.calls(engine)]
    assert commands[2:] == [[path, "stop", "--time", "1", name], [path, "rm", "--force", name]]
    assert not (engine / "state" / name).exists()


async def test_cancel_stops_the_container(engine: Path, tmp_path: Path) -> None:
    started = await _launcher(engine)(_spec(tmp_path, ["sleep", "60"]))
    assert isinstance(started, ContainerRunning)
    abort = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, abort.set)
    assert await started.finish(loop.time() + 60, abort, 1.0) == Aborted()
    assert [c["argv"][1] for c in engine_standin.calls(engine)][2:] == ["stop", "rm"]  # type: ignore[index]


async def test_no_engine_binary_is_a_clear_refusal(tmp_path: Path) -> None:
    launcher = ContainerLauncher("podman", "test-runner", str(tmp_path / "nowhere" / "podman"))
    refused = await launcher(_spec(tmp_path, ["true"]))
    assert isinstance(refused, NotRunnable)
    assert "not found" in refused.reason and "--container-engine" in refused.reason
    on_path = ContainerLauncher("podman", "test-runner", host={"PATH": str(tmp_path)})
    refused = await on_path(_spec(tmp_path, ["true"]))
    assert isinstance(refused, NotRunnable) and "install podman" in refused.reason
    assert on_path.missing() == refused.reason


async def test_an_installed_engine_is_not_missing(engine: Path) -> None:
    assert _launcher(engine).missing() is None


async def test_engine_that_cannot_run_containers_is_a_clear_refusal(
    engine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_ENGINE_DOWN", "1")
    refused = await _launcher(engine)(_spec(tmp_path, ["true"]))
    assert isinstance(refused, NotRunnable)
    assert "cannot run containers" in refused.reason and "docker daemon" in refused.reason
    assert [c["argv"][1] for c in engine_standin.calls(engine)] == ["version"]  # type: ignore[index]


async def test_app_without_image_is_refused(engine: Path, tmp_path: Path) -> None:
    spec = Launch(["true"], {}, str(tmp_path), 1024, "test-runner", job_id=JOB)
    refused = await _launcher(engine)(spec)
    assert isinstance(refused, NotRunnable) and "ociimage" in refused.reason
    assert engine_standin.calls(engine) == []


def _working_engine() -> str | None:
    for name in ("podman", "docker"):
        path = shutil.which(name)
        if path and subprocess.run([path, "version"], capture_output=True, timeout=30).returncode == 0:
            return name
    return None


async def test_a_real_container_runs_where_an_engine_works(tmp_path: Path) -> None:
    kind = _working_engine()
    if kind is None:
        pytest.skip("no working podman or docker here (a docker client without a daemon does not count)")
    launcher = ContainerLauncher("docker" if kind == "docker" else "podman", "test-runner")
    ending, stdout = await _run(launcher, _spec(tmp_path, ["sh", "-c", "echo $GREETING"], GREETING="hi"), 300)
    assert ending == Exited(0) and stdout == "hi\n"


async def test_executor_runs_a_template_in_its_apps_image(
    nats_url: str, database_url: str, engine: Path
) -> None:
    ring = keyring(new_key())
    async with tenant_stack(
        nats_url, database_url, ring, runner="docker", container_engine=str(engine / "docker")
    ) as stack:
        await stack.company("acme")
        document = {
            "name": "boxed",
            "executable": "sh",
            "cmdparams": '-c \'echo "$MODE $API_PASSWORD"; sleep "$NAP"\'',
            "ociimage": IMAGE,
            "environment": {"API_PASSWORD": {"type": "password"}, "MODE": {"defval": "boxed"}},
        }
        app = await stack.client.call("app.import", api.AppImport(document=document), api.AppImported)
        creds = t.CredentialSet(company="acme", name="c", values={"API_PASSWORD": "pw-in-box-9931"})
        await stack.client.call("credential.set", creds, t.CredentialInfo)
        template = await stack.template(name="boxed", app=str(app.app.id), company="acme", env={"NAP": "0"})
        await stack.client.call(
            "credential.assign", t.CredentialAssign(template_id=template.id, name="c"), t.Assigned
        )

        job = await stack.final_job((await stack.run(template.id)).job_id)
        assert job.status is Status.PROCESSED, job.reason
        assert job.stdout == "boxed ********\n"
        run = [c for c in engine_standin.calls(engine) if c["argv"][1] == "run"][-1]  # type: ignore[index]
        assert run["image"] == IMAGE and run["command"][:2] == ["sh", "-c"]  # type: ignore[index]
        assert not any("pw-in-box-9931" in word for word in run["argv"])  # type: ignore[union-attr]

        queued = await stack.run(template.id, NAP="60")
        await eventually(lambda: _running(stack, queued.job_id), what="the container to start")
        await stack.client.call("job.cancel", api.JobRef(id=queued.job_id), CancelReply)
        cancelled = await stack.final_job(queued.job_id)
        assert cancelled.status is Status.ERROR and cancelled.kind is ErrorKind.CANCELLED
        name = f"jetjobs-{queued.job_id}-1"
        stops = [c["argv"][1:] for c in engine_standin.calls(engine) if name in c["argv"]]  # type: ignore[operator,index]
        assert ["stop", "--time", "5", name] in stops and ["rm", "--force", name] in stops


async def _running(stack: Stack, job_id: str) -> bool:
    return (await stack.job(job_id)).status is Status.STARTED
