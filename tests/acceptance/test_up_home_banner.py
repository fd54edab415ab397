"""`jetjobs up --home DIR --demo` as a new user meets it: the banner's suggested
command reaches this `up` (not whatever NATS listens on 4222), the demo's lines
give job ids that `job show` takes, and a home where no `up` runs is an error
naming it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.acceptance.cli import clean_env, jetjobs
from tests.acceptance.test_up import gone, interrupt, read_until, start_up

pytestmark = pytest.mark.timeout(240)

DEMO_LINE = re.compile(r"^\[\d\d:\d\d:\d\d\] job (\S+) processed ")


async def test_the_banner_and_demo_lines_give_commands_that_work_as_printed(tmp_path: Path) -> None:
    home = tmp_path / "elsewhere"
    process = await start_up(home, "--demo")
    try:
        assert process.stdout is not None
        lines = await read_until(process.stdout, " processed ", timeout=90)
        [tried] = [line for line in lines if line.startswith("  try ")]
        suggested = tried.removeprefix("  try ").split("    ·    ")[0].strip()
        assert suggested == f"jetjobs --home {shlex.quote(str(home.resolve()))} job list", tried
        prefix = shlex.split(suggested)[1:-2]

        env = clean_env()
        listed = await jetjobs(*prefix, "job", "list", env=env)
        assert listed.code == 0, listed
        [job_id] = [match[1] for line in lines if (match := DEMO_LINE.match(line))]
        assert job_id in listed.out, listed
        shown = await jetjobs(*prefix, "job", "show", job_id, env=env)
        assert shown.code == 0 and f"job        {job_id}" in shown.out, shown

        nowhere = tmp_path / "nowhere"
        expected = (
            f"jetjobs: error: no jetjobs up is running for home {nowhere}: "
            f"start it with `jetjobs up --home {nowhere}`, or give --nats-url (JETJOBS_NATS_URL)\n"
        )
        for named in (
            await jetjobs("--home", str(nowhere), "job", "list", env=env),
            await jetjobs("job", "list", env=clean_env(JETJOBS_HOME=str(nowhere))),
        ):
            assert (named.code, named.out, named.err) == (1, "", expected), named
    finally:
        assert await interrupt(process) == 0
    await gone(home, timeout=20)
