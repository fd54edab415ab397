"""`jetjobs status`: the whole system at a glance."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from bus.connection import redacted
from bus.overview import live_runners, pool_depths, scheduler_leader, store_lag
from contracts import api
from contracts.api import ApiFailure
from contracts.enums import Status

from .. import render
from ..commands import CommandError, Session

FAILURES_SHOWN = 5

FAILURES_UNKNOWN = "unknown: the store did not answer"


@dataclass
class Report:
    """What `status` found; every part that could not be read says why, and is None
    (`null`) rather than empty: no failure shown must mean none happened."""

    nats: str
    store: str
    leader: str | None = None
    runners: list[dict[str, Any]] = field(default_factory=list)
    pools: list[dict[str, Any]] = field(default_factory=list)
    store_lag: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, Any]] | None = None

    def unread(self) -> list[str]:
        """The parts that could not be read."""
        return ["last failures"] if self.failures is None else []


async def _failures(ses: Session, report: Report) -> None:
    query = api.JobQuery(status=Status.ERROR, limit=FAILURES_SHOWN)
    try:
        jobs = (await ses.api.call("job.list", query, api.JobList)).jobs
    except ApiFailure as failure:
        report.store = f"not answering: {failure.message}"
        return
    report.store = "answering"
    report.failures = [
        {
            "job": j.id,
            "company": j.company,
            "kind": j.kind.value if j.kind else None,
            "end": j.end.isoformat() if j.end else None,
            "reason": j.reason,
        }
        for j in jobs
    ]


async def gather(ses: Session, nats_url: str) -> Report:
    """Read everything `status` shows, from JetStream and the store's API."""
    version = ses.bus.server_version
    report = Report(nats=f"{redacted(nats_url)} reachable (nats-server {version})", store="unknown")
    js = ses.bus.js
    report.leader = await scheduler_leader(js)
    report.runners = [
        {"id": r.id, "pool": r.pool, "host": r.host, "used": len(r.running), "slots": r.slots}
        for r in await live_runners(js)
    ]
    report.pools = [asdict(d) for d in await pool_depths(js)]
    report.store_lag = await store_lag(js)
    await _failures(ses, report)
    return report


def _human(report: Report) -> str:
    runners = [(r["id"], r["pool"], r["host"], f"{r['used']}/{r['slots']}") for r in report.runners]
    pools = [(p["pool"], p["waiting"], p["in_flight"]) for p in report.pools]
    if report.failures is None:
        failures = FAILURES_UNKNOWN
    else:
        rows = [
            (f["job"], f["company"], f["kind"], f["end"] and datetime.fromisoformat(f["end"]), f["reason"])
            for f in report.failures
        ]
        failures = render.table(rows, ["job", "company", "kind", "end", "reason"])
    lag = ", ".join(f"{k} {v}" for k, v in report.store_lag.items()) or "(no store consumers yet)"
    return "\n".join(
        [
            f"NATS       {report.nats}",
            f"store      {report.store}; lag {lag}",
            f"scheduler  leader {report.leader or '(none: no scheduler holds the lease)'}",
            "",
            "runners",
            render.table(runners, ["runner", "pool", "host", "used/slots"]),
            "",
            "queues",
            render.table(pools, ["pool", "waiting", "in flight"]),
            "",
            "last failures",
            failures,
        ]
    )


async def status(ses: Session, nats_url: str) -> None:
    """Print the report; then, when a part of it could not be read, fail (exit 1) so
    that a script watching the system notices."""
    report = await gather(ses, nats_url)
    print(json.dumps(asdict(report), indent=2) if ses.as_json else _human(report))
    unread = report.unread()
    if unread:
        raise CommandError(f"status could not read {', '.join(unread)}: the store is {report.store}")
