"""End to end on real servers: template → scheduler → executor → store → Postgres."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import asyncpg

from contracts.enums import ErrorKind, Interval, Status
from tests.stack import eventually, make_scheduler, running_stack


async def test_a_template_firing_every_second_is_recorded_processed(nats_url: str, database_url: str) -> None:
    async with running_stack(nats_url, database_url) as stack:
        await stack.company("acme")
        app = await stack.app("-c 'echo \"hello $WHO\"'", env={"WHO": {"defval": "world"}})
        template = await stack.template(
            name="every-second",
            app=app.app.uuid,
            company="acme",
            interv=Interval.CUSTOM,
            cron="* * * * * *",
            env={"WHO": "acme"},
        )

        async def two_processed() -> list[object] | None:
            done = [j for j in await stack.jobs(template_id=template.id) if j.status is Status.PROCESSED]
            return done if len(done) >= 2 else None

        await eventually(two_processed, 15, "two processed jobs")

    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT id, status::text, exit_code, stdout, scheduled_at FROM job WHERE template_id = $1",
            template.id,
        )
    finally:
        await connection.close()
    processed = [r for r in rows if r["status"] == "processed"]
    assert len(processed) >= 2
    assert all(r["exit_code"] == 0 and r["stdout"] == "hello acme\n" for r in processed)
    assert all(r["scheduled_at"].microsecond == 0 for r in rows)
    assert len({r["scheduled_at"] for r in rows}) == len(rows)


async def test_a_failing_command_is_recorded_error_with_its_exit_code(
    nats_url: str, database_url: str
) -> None:
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        await stack.company("acme")
        app = await stack.app("-c 'echo broken >&2; exit 7'")
        template = await stack.template(name="manual", app=app.app.uuid, company="acme")
        queued = await stack.run(template.id)
        job = await stack.final_job(queued.job_id)
    assert job.status is Status.ERROR
    assert job.kind is ErrorKind.EXIT
    assert job.exit_code == 7
    assert job.stderr == "broken\n"
    assert job.attempt == 1
    assert job.launched_by == "api"


async def test_run_now_overrides_reach_the_process(nats_url: str, database_url: str) -> None:
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        await stack.company("acme")
        app = await stack.app(
            "-c 'echo $A-$B-$JETJOBS_ATTEMPT' {A}", env={"A": {"defval": "app"}, "B": {"defval": "app"}}
        )
        template = await stack.template(
            name="layers", app=app.app.uuid, company="acme", env={"B": "template"}
        )
        job = await stack.final_job((await stack.run(template.id, A="run")).job_id)
    assert job.status is Status.PROCESSED
    assert job.stdout == "run-template-1\n"
    assert job.argv[-1] == "run"


async def test_restarted_and_concurrent_schedulers_never_run_a_slot_twice(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        await stack.company("acme")
        app = await stack.app("-c 'echo $JETJOBS_JOB_ID >> {LEDGER}'")
        template = await stack.template(
            name="ledger",
            app=app.app.uuid,
            company="acme",
            interv=Interval.CUSTOM,
            cron="* * * * * *",
            env={"LEDGER": str(ledger)},
        )
        first, second = make_scheduler(nats_url), make_scheduler(nats_url)
        await first.start()
        await second.start()
        await asyncio.sleep(2.5)
        await first.stop()
        restarted = make_scheduler(nats_url)
        await restarted.start()
        await asyncio.sleep(2.5)
        for scheduler in (second, restarted):
            await scheduler.stop()

        async def all_recorded() -> bool:
            """Every job that ran is in the store and final (the store may project a
            job that ran just before the schedulers stopped a moment later)."""
            ran = set(ledger.read_text().split()) if ledger.exists() else set()
            jobs = await stack.jobs(template_id=template.id)
            return bool(jobs) and all(j.final for j in jobs) and ran <= {j.id for j in jobs}

        await eventually(all_recorded, 15, "every fired job to finish and be recorded")
        jobs = await stack.jobs(template_id=template.id)

    runs = Counter(ledger.read_text().split())
    assert len(runs) >= 4
    assert set(runs.values()) == {1}, f"a slot ran more than once: {runs}"
    assert set(runs) == {j.id for j in jobs}
