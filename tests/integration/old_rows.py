"""Back-dated history written straight into Postgres, for the retention tests."""

from __future__ import annotations

from typing import Any


async def job(
    conn: Any,
    job_id: str,
    days: float,
    *,
    status: str = "processed",
    final: bool = True,
    artifact: bool = True,
) -> None:
    """A job `days` old with one attempt, its events, a deadline and (with `artifact`) a file."""
    await conn.execute(
        "INSERT INTO job (id, company, status, final, stdout, created_at, updated_at) "
        "VALUES ($1, 'acme', $2::job_status, $3, 'output', now() - make_interval(secs => $4), "
        "now() - make_interval(secs => $4))",
        job_id,
        status,
        final,
        days * 86400,
    )
    await conn.execute(
        'INSERT INTO job_attempt (job_id, attempt, status, results) VALUES ($1, 1, $2::job_status, \'{"k": "v"}\')',
        job_id,
        status,
    )
    await conn.execute(
        "INSERT INTO job_event (job_id, attempt, status, at, payload) "
        "SELECT $1, 1, s::job_status, now(), '{}' FROM unnest($2::text[]) AS s",
        job_id,
        ["dispatched", "acknowledged", status] if status not in ("dispatched", "acknowledged") else [status],
    )
    await conn.execute("INSERT INTO job_dispatch (job_id, attempt, deadline) VALUES ($1, 1, now())", job_id)
    if artifact:
        await conn.execute(
            "INSERT INTO artifact (job_id, attempt, name, size, sha256, content) "
            "VALUES ($1, 1, 'report.txt', 5, 'x', 'hello')",
            job_id,
        )


async def flow_run(
    conn: Any, run_id: str, days: float, status: str, node_job: str, ended_days: float | None = None
) -> None:
    """A flow run started `days` ago (and ended then or `ended_days` ago, unless `status`
    is started) with one node."""
    ended = None if status == "started" else (days if ended_days is None else ended_days) * 86400
    await conn.execute(
        "INSERT INTO flow_run (id, company, name, spec, status, created_at, ended_at) "
        "VALUES ($1, 'acme', 'f', '{}', $2, now() - make_interval(secs => $3), "
        "now() - make_interval(secs => $4))",
        run_id,
        status,
        days * 86400,
        ended,
    )
    await conn.execute(
        "INSERT INTO flow_node (run_id, node, status, job_id) VALUES ($1, 'a', 'succeeded', $2)",
        run_id,
        node_job,
    )


async def slot(conn: Any, template_id: int, days: float, job_id: str | None = None) -> None:
    """A fired slot record of `days` ago."""
    await conn.execute(
        "INSERT INTO schedule_slot (template_id, slot, company, outcome, trigger, job_id, recorded_at) "
        "VALUES ($1, now() - make_interval(secs => $2), 'acme', 'fired', 'schedule', $3, "
        "now() - make_interval(secs => $2))",
        template_id,
        days * 86400,
        job_id,
    )


async def dead_letters(conn: Any, count: int, days: float) -> None:
    await conn.execute(
        "INSERT INTO dead_letter (stream_seq, company, reason, subject, payload, at) "
        "SELECT n, 'acme', 'r', 'jetjobs.dead.acme', json_build_object('n', n, 'age', $2::float8)::text, "
        "now() - make_interval(secs => $2) - n * interval '1 ms' "
        "FROM generate_series(1, $1) AS n",
        count,
        days * 86400,
    )


async def audit_entries(conn: Any, count: int, days: float) -> None:
    await conn.execute(
        "INSERT INTO audit_log (at, actor, action) "
        "SELECT now() - make_interval(secs => $2), 'admin', 'company.create' FROM generate_series(1, $1)",
        count,
        days * 86400,
    )


async def counts(conn: Any) -> dict[str, int]:
    """Rows of every table retention prunes."""
    tables = (
        "job",
        "job_attempt",
        "job_event",
        "artifact",
        "job_dispatch",
        "flow_run",
        "flow_node",
        "schedule_slot",
        "dead_letter",
        "audit_log",
    )
    return {table: await conn.fetchval(f"SELECT count(*) FROM {table}") for table in tables}
