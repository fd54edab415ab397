"""Client commands (`jetjobs job list`, `--help`) start without importing the
services they do not run: every command pays for whatever `jetjobs.cli` imports."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "asyncpg",
    "executor.binding",
    "executor.job",
    "executor.secrets",
    "executor.service",
    "jetjobs.embedded",
    "jetjobs.observe.serve",
    "jetjobs.services",
    "jetjobs.up",
    "scheduler.service",
    "store.credentials",
    "store.db",
    "store.service",
)


def test_the_cli_imports_no_service() -> None:
    script = (
        "import json, sys, jetjobs.cli; jetjobs.cli.build_parser(); print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    imported = set(json.loads(done.stdout))
    assert [name for name in HEAVY if name in imported] == []
