"""Which series /metrics shows: jobs waiting per pool, every store consumer's lag
(as `jetjobs status` shows it), known label values from the start, and one
bounded series for the scheduler's last fire that a former leader resets."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import generate_latest

from bus import TemplateBoard
from bus.overview import store_lag
from bus.telemetry import Telemetry
from contracts import subjects as s
from contracts.enums import ErrorKind
from scheduler import SchedulerConfig, SchedulerService
from scheduler.metrics import SchedulerMetrics
from tests.integration.test_scheduler import template
from tests.observe import Scrape, observed_stack, scrape
from tests.stack import eventually
from tests.unit.jobs import message


async def test_jobs_waiting_in_a_pool_without_executors_are_a_gauge(nats_url: str, database_url: str) -> None:
    async with observed_stack(nats_url, database_url) as (stack, server):
        now = datetime.now(UTC)
        jobs = [
            message(job_id=f"nowhere-{i}", pool="nowhere", scheduled_at=now, dispatched_at=now, timeout=600)
            for i in range(3)
        ]
        await stack.bus.publisher.dispatch(jobs)

        async def waiting() -> Scrape | None:
            scraped = await scrape(server.url)
            return scraped if scraped.value("jetjobs_pool_waiting_jobs", pool="nowhere") == 3 else None

        scraped = await eventually(waiting, what="the three jobs to show as waiting")
        assert scraped.value("jetjobs_pool_in_flight_jobs", pool="nowhere") == 0
        assert ("jetjobs_pool_waiting_jobs", (("pool", "default"),)) in scraped.samples

        lag = await store_lag(stack.bus.js)
        feeds = {
            dict(labels)["feed"]
            for name, labels in scraped.samples
            if name == "jetjobs_store_pending_messages"
        }
        assert (
            set(lag)
            == feeds
            == {
                s.STORE_DISPATCH_CONSUMER,
                s.STORE_EVENTS_CONSUMER,
                s.STORE_DEAD_CONSUMER,
                s.STORE_SLOTS_CONSUMER,
                "store_flow_starts",
            }
        )


async def test_known_label_values_are_shown_before_first_use(nats_url: str, database_url: str) -> None:
    """After a restart a panel reads 0, not "No data"."""
    async with observed_stack(nats_url, database_url) as (_, server):
        scraped = await scrape(server.url)
        for kind in ErrorKind:
            error = {"status": "error", "kind": kind.value}
            assert ("jetjobs_store_job_outcomes_total", tuple(sorted(error.items()))) in scraped.samples
            key = (
                "jetjobs_executor_jobs_finished_total",
                tuple(sorted({**error, "pool": "default"}.items())),
            )
            assert key in scraped.samples
        processed = (("kind", ""), ("status", "processed"))
        assert scraped.samples[("jetjobs_store_job_outcomes_total", processed)] == 0
        assert scraped.samples[("jetjobs_executor_job_retries_total", (("pool", "default"),))] == 0
        for outcome in ("fired", "late", "skipped"):
            assert scraped.samples[("jetjobs_scheduler_slots_total", (("outcome", outcome),))] == 0
        assert scraped.samples[("jetjobs_store_messages_ingested_total", (("feed", "store_events"),))] == 0


def _last_fired(registry: object) -> list[str]:
    text = generate_latest(registry).decode()  # type: ignore[arg-type]
    return [line for line in text.splitlines() if line.startswith("jetjobs_scheduler_last_fired")]


async def test_last_fired_is_one_series_and_a_former_leader_resets_it(nats_url: str) -> None:
    telemetry = Telemetry()
    scheduler = SchedulerService(
        SchedulerConfig(nats_url=nats_url), metrics=SchedulerMetrics(telemetry.registry)
    )
    await scheduler.start()
    try:
        board = await TemplateBoard.open(scheduler._bus.js)  # type: ignore[union-attr]
        for template_id in (1, 2, 3):
            await board.put(template(template_id))

        async def fired() -> list[str] | None:
            lines = _last_fired(telemetry.registry)
            return lines if lines and not lines[0].endswith(" 0.0") else None

        lines = await eventually(fired, what="the scheduler to fire")
        assert len(lines) == 1 and "template" not in lines[0], lines
    finally:
        await scheduler.stop()
    assert _last_fired(telemetry.registry) == ["jetjobs_scheduler_last_fired_timestamp_seconds 0.0"]
