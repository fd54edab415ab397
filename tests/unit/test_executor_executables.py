"""Commands named without a directory: found once in a while on the job's PATH,
and run exactly as exec's own search would run them."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

from executor.executables import Executables
from executor.process import Exited, Launch, NotRunnable, Running, spawn

FAR = 1e9


def command(folder: Path, name: str, says: str) -> Path:
    """An executable script that prints `says`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f'#!/bin/sh\necho "{says}"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


async def run(argv: list[str], search: str, cwd: Path, executables: Executables) -> str:
    """What the command printed, started the way a job is."""
    env = {"PATH": search}
    spawned = spawn(Launch(argv, env, str(cwd), 10_000, "unit"), executables)
    assert not isinstance(spawned, NotRunnable), spawned
    running = Running(spawned, 10_000)
    assert await running.finish(FAR, asyncio.Event(), 5) == Exited(0)
    return running.stdout.text().strip()


async def test_argv0_is_the_command_as_written(tmp_path: Path) -> None:
    executables = Executables()
    search = "/usr/bin:/bin"
    printed = await run(["cat", "/proc/self/cmdline"], search, tmp_path, executables)
    assert printed.split("\0")[0] == "cat"
    assert executables.place("cat", search) is not None


async def test_the_place_is_looked_up_once(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    command(second, "greet", "second")
    search = os.pathsep.join([str(first), str(second), "/usr/bin", "/bin"])
    executables = Executables()
    assert await run(["greet"], search, tmp_path, executables) == "second"
    assert executables.place("greet", search) == str(second / "greet")
    command(first, "greet", "first")  # installed earlier on PATH: not seen while the place is fresh
    assert await run(["greet"], search, tmp_path, executables) == "second"


async def test_a_place_is_looked_up_again_once_stale(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    command(second, "greet", "second")
    search = os.pathsep.join([str(first), str(second)])
    executables = Executables(fresh_for=0.0)
    assert await run(["greet"], search, tmp_path, executables) == "second"
    command(first, "greet", "first")
    assert await run(["greet"], search, tmp_path, executables) == "first"


async def test_a_command_gone_from_its_place_is_searched_for_again(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    command(first, "greet", "first")
    command(second, "greet", "second")
    search = os.pathsep.join([str(first), str(second)])
    executables = Executables()
    assert await run(["greet"], search, tmp_path, executables) == "first"
    (first / "greet").unlink()
    assert await run(["greet"], search, tmp_path, executables) == "second"
    assert executables.place("greet", search) == str(second / "greet")


async def test_relative_path_entries_are_left_to_exec(tmp_path: Path) -> None:
    """A relative entry is relative to the job's working directory, not the executor's."""
    workdir = tmp_path / "work"
    command(workdir / "bin", "greet", "job's own")
    executables = Executables()
    assert executables.place("greet", "bin") is None
    assert await run(["greet"], "bin", workdir, executables) == "job's own"


async def test_names_with_a_directory_and_missing_commands_are_not_kept(tmp_path: Path) -> None:
    executables = Executables()
    assert executables.place(str(tmp_path / "greet"), "/usr/bin") is None
    assert executables.place("no-such-command-here", str(tmp_path)) is None
    spawned = spawn(
        Launch(["no-such-command-here"], {"PATH": str(tmp_path)}, str(tmp_path), 100, "unit"), executables
    )
    assert isinstance(spawned, NotRunnable) and "not found on PATH of runner unit" in spawned.reason
