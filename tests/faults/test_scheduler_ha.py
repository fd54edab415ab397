"""Two scheduler processes: SIGKILL the leader, the standby takes over within a
few seconds, and over the whole run no slot is missed and none fired twice
(checked in Postgres)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bus.lease import Lease
from contracts import schedule as sc
from contracts.schedule import SlotOutcome
from jetjobs.embedded import NatsServer
from tests.stack import Stack, eventually, running_stack

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def schedulers(embedded_nats: NatsServer, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Starts `python -m jetjobs scheduler` processes; each is killed by pid at teardown."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)


def spawn(url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JETJOBS_")}
    env |= {"JETJOBS_NATS_URL": url, "JETJOBS_METRICS_PORT": "0", "JETJOBS_LOG_LEVEL": "info"}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "jetjobs", "scheduler"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def pid_of(holder: str | None) -> int | None:
    """The pid in a lease holder name `name@host:pid:token`."""
    if not holder:
        return None
    return int(holder.rsplit(":", 2)[1])


async def leader_pid(stack: Stack) -> int | None:
    return pid_of(await (await Lease.open(stack.bus.js, "test")).holder())


async def test_standby_takes_over_and_no_slot_is_missed_or_doubled(
    embedded_nats: NatsServer, database_url: str, schedulers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    url = embedded_nats.url
    async with running_stack(url, database_url, scheduler=False) as stack:
        await stack.company()
        app = await stack.app("-c true")
        template = await stack.template(
            name="tick", app=app.app.uuid, company="acme", interv="c", cron="* * * * * *",
            overlap="allow", misfire="catch_up", catch_up_limit=100,
        )  # fmt: skip
        first, second = spawn(url, tmp_path / "a.log"), spawn(url, tmp_path / "b.log")
        schedulers += [first, second]
        pids = {first.pid: first, second.pid: second}
        leader = await eventually(lambda: leader_pid(stack), 30, "a scheduler to lead")
        assert leader in pids
        await asyncio.sleep(3)

        loop = asyncio.get_running_loop()
        killed_at = loop.time()
        os.kill(leader, signal.SIGKILL)

        async def other_leads() -> int | None:
            pid = await leader_pid(stack)
            return pid if pid not in (None, leader) else None

        standby = await eventually(other_leads, 15, "the standby to take over")
        takeover = loop.time() - killed_at
        assert standby in pids and takeover < 10, f"took over after {takeover:.1f} s"
        await asyncio.sleep(3)
        os.kill(standby, signal.SIGTERM)
        pids[standby].wait(15)

        async def recorded() -> list[object] | None:
            jobs = await stack.jobs(template_id=template.id, limit=1000)
            return jobs if len(jobs) >= 8 else None

        await eventually(recorded, 15, "jobs in Postgres")
        await asyncio.sleep(1.5)  # let the store project the last records
        jobs = await stack.jobs(template_id=template.id, limit=1000)
        explanation = await stack.client.call(
            "template.explain", sc.ExplainRequest(id=template.id, next=0, last=500), sc.Explanation
        )

    slots = sorted(job.scheduled_at for job in jobs if job.scheduled_at is not None)
    assert max(Counter(slots).values()) == 1, "a slot was fired twice"
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert all(gap == timedelta(seconds=1) for gap in gaps), f"slots missed around the failover: {slots}"
    assert slots[-1] - slots[0] >= timedelta(seconds=8), f"too few slots: {slots}"
    records = {view.record.slot: view.record for view in explanation.slots}
    assert set(slots) <= set(records), "a fired slot has no slot record"
    assert all(r.outcome is not SlotOutcome.SKIPPED for r in records.values())
    triggers = Counter(r.trigger.value for r in records.values())
    assert triggers["catch_up"] >= 1, f"no slot was caught up after the failover: {triggers}"
