"""`jetjobs up --demo` on a fresh folder: jobs run within seconds, Ctrl-C leaves nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

from tests.acceptance.cli import clean_env, jetjobs
from tests.stack import eventually


def processes_using(folder: Path) -> list[int]:
    """Pids whose command line mentions `folder` (the embedded servers do)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in cmdline:
            found.append(int(entry.name))
    return found


async def read_until(stream: asyncio.StreamReader, needle: str, timeout: float) -> list[str]:
    lines: list[str] = []

    async def scan() -> None:
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError("jetjobs up exited early:\n" + "".join(lines))
            lines.append(line)
            if needle in line:
                return

    try:
        await asyncio.wait_for(scan(), timeout)
    except TimeoutError:
        raise AssertionError(f"no {needle!r} within {timeout} s:\n" + "".join(lines)) from None
    return lines


async def start_up(home: Path, *args: str, **env: str) -> asyncio.subprocess.Process:
    """`jetjobs up` in its own session, logging at `warning` unless `env` says otherwise."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jetjobs",
        "--home",
        str(home),
        "up",
        *args,
        env=clean_env(**{"JETJOBS_LOG_LEVEL": "warning", **env}),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )


async def interrupt(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return await asyncio.wait_for(process.wait(), 30)
    except TimeoutError:
        os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        raise AssertionError("jetjobs up did not stop within 30 s of SIGINT") from None


async def test_up_demo_runs_jobs_and_stops_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    process = await start_up(home, "--demo")
    try:
        assert process.stdout is not None
        lines = await read_until(process.stdout, " processed ", timeout=60)
        assert any("jetjobs is up" in line for line in lines)
        assert f"  logs        {home.resolve() / 'jetjobs.log'}\n" in lines
        assert (
            "demo: company 'demo', templates 'hello' (every 5 s) and 'grumpy' (every 20 s, fails)\n" in lines
        )
        assert any("Hello from jetjobs" in line for line in lines)
        lines += await read_until(process.stdout, " error exit (exit 3)", timeout=40)
        # grumpy's job is dead-lettered: the warning goes to the log, not between the outcomes
        logged = await eventually(lambda: _logged(home, "job.dead_lettered"), 10, "the dead letter logged")
        assert json.loads(logged)["level"] == "warning"
        assert json.loads((home / "endpoints.json").read_text())["nats_url"].startswith("nats://")
        listing = await jetjobs(
            "--home", str(home), "--json", "job", "list", "--company", "demo", env=clean_env()
        )
        assert listing.code == 0, listing
        assert any(job["status"] == "processed" for job in json.loads(listing.out))
        stored = await jetjobs(
            "--home", str(home), "credentials", "set", "demo", "abra", "API_PASSWORD=s3cret", env=clean_env()
        )
        assert stored.code == 0, stored  # with the key `up` made beside its database
        assert (home / "secret.key").stat().st_mode & 0o777 == 0o600
        listed = await jetjobs(
            "--home", str(home), "--json", "template", "list", "--company", "demo", env=clean_env()
        )
        [grumpy] = [t["id"] for t in json.loads(listed.out) if t["name"] == "grumpy"]
        made_inactive = await jetjobs(
            "--home", str(home), "template", "update", str(grumpy), "--active", "false", env=clean_env()
        )
        assert made_inactive.code == 0, made_inactive
    finally:
        code = await interrupt(process)
    assert code == 0
    assert process.stdout is not None
    said = (await process.stdout.read()).decode()
    assert "stopping: running jobs get up to 30 s to finish" in said and "jetjobs stopped" in said, said
    assert not [line for line in [*lines, *said.splitlines()] if line.startswith("{")], (
        "log lines on the terminal"
    )
    assert not (home / "endpoints.json").exists()
    assert processes_using(home) == [], "embedded servers left running"

    again = await start_up(home, "--demo")
    try:
        assert again.stdout is not None
        announced = await read_until(again.stdout, "demo: company", timeout=60)
        announced += [(await again.stdout.readline()).decode()]
        assert announced[-2:] == [
            "demo: company 'demo', template 'hello' (every 5 s)\n",
            "demo: 'grumpy' not scheduled: the template is inactive (--active false)\n",
        ], announced
        kept = await jetjobs(
            "--home", str(home), "--json", "job", "list", "--company", "demo", env=clean_env()
        )
        assert any(job["status"] == "processed" for job in json.loads(kept.out)), (
            "history lost across restart"
        )
        # the same key again: the credential set before the restart still opens for a run
        assigned = await jetjobs("--home", str(home), "credentials", "assign", "1", "abra", env=clean_env())
        assert assigned.code == 0, assigned
        run = await jetjobs("--home", str(home), "--json", "job", "run", "1", "--wait", env=clean_env())
        assert run.code == 0 and json.loads(run.out)["status"] == "processed", run
    finally:
        assert await interrupt(again) == 0
    assert processes_using(home) == []


async def _logged(home: Path, event: str) -> str | None:
    """The first line of `home/jetjobs.log` about `event`."""
    with contextlib.suppress(OSError):
        for line in (home / "jetjobs.log").read_text().splitlines():
            if f'"event": "{event}"' in line:
                return line
    return None


async def test_a_home_that_cannot_be_a_folder_is_one_line_and_starts_nothing(tmp_path: Path) -> None:
    in_the_way = tmp_path / "home"
    in_the_way.write_text("not a folder")
    for home, expected in (
        (in_the_way, f"--home (JETJOBS_HOME) {in_the_way}: a file is in the way; give a folder"),
        (
            in_the_way / "sub",
            f"--home (JETJOBS_HOME) {in_the_way / 'sub'}: cannot make the folder: Not a directory",
        ),
    ):
        result = await jetjobs("up", env=clean_env(JETJOBS_HOME=str(home)), timeout=30)
        assert (result.code, result.out) == (1, ""), result
        assert result.err == f"jetjobs: error: {expected}\n"
    assert in_the_way.read_text() == "not a folder"


async def gone(home: Path, timeout: float) -> None:
    """Wait until no process mentions `home`; any still there after `timeout` is
    killed, so the test leaves nothing behind, and the test fails."""

    async def none_left() -> bool:
        return not processes_using(home)

    try:
        await eventually(none_left, timeout, what=f"every process of {home} to end")
    except AssertionError:
        left = processes_using(home)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        raise AssertionError(f"still running: {left}") from None


async def test_up_killed_outright_takes_its_servers_along_and_starts_again(tmp_path: Path) -> None:
    home = tmp_path / "home"
    process = await start_up(home)
    assert process.stdout is not None
    try:
        await read_until(process.stdout, "jetjobs is up", timeout=60)
        servers = [pid for pid in processes_using(home) if pid != process.pid]
        assert len(servers) >= 2, "nats-server and the postmaster"
    finally:
        process.kill()  # SIGKILL: jetjobs up stops nothing itself
        await process.wait()
    await gone(home, timeout=30)  # the servers do not outlive the jetjobs up that started them

    again = await start_up(home)  # the same home: no stale lock, no port in use
    assert again.stdout is not None
    try:
        await read_until(again.stdout, "jetjobs is up", timeout=60)
    finally:
        again.send_signal(signal.SIGHUP)  # the terminal closed: stopped in order
        code = await asyncio.wait_for(again.wait(), 30)
    assert code == 0
    assert not (home / "endpoints.json").exists()
    await gone(home, timeout=5)
