"""After a long outage over unevenly spread slots (office hours on weekdays), the
misfire policies act on the latest missed slots: `fire_once` runs the very
latest, `catch_up` the latest N (pure functions, no servers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.cron import fires_between
from contracts.models import ActiveTemplate
from contracts.schedule import Misfire
from scheduler.entry import Entry
from scheduler.policy import MAX_MISSED, misfire, missed_slots

FRIDAY_17 = datetime(2026, 3, 13, 17, tzinfo=UTC)
MONDAY_17 = datetime(2026, 3, 16, 17, tzinfo=UTC)
OFFICE_SECONDS = "* * 9-17 * * 1-5"


def office_hours(policy: Misfire) -> Entry:
    return Entry.of(
        ActiveTemplate(
            id=1,
            revision="r1",
            name="t",
            company="acme",
            pool="default",
            app_id=1,
            executable="/bin/true",
            cron=OFFICE_SECONDS,
            misfire=policy,
            catch_up_limit=5,
        )
    )


def test_fire_once_runs_the_latest_missed_slot_over_a_weekend() -> None:
    missed = missed_slots(office_hours(Misfire.FIRE_ONCE), FRIDAY_17, MONDAY_17)
    (ran,) = [d.slot for d in misfire(office_hours(Misfire.FIRE_ONCE), missed, recorded=True)]
    assert ran == MONDAY_17


def test_the_earliest_and_the_latest_missed_slots_are_those_of_the_outage() -> None:
    every = fires_between(OFFICE_SECONDS, "UTC", FRIDAY_17, MONDAY_17)
    missed = missed_slots(office_hours(Misfire.CATCH_UP), FRIDAY_17, MONDAY_17)
    assert missed == every[:MAX_MISSED] + every[-MAX_MISSED:]
    caught = misfire(office_hours(Misfire.CATCH_UP), missed, recorded=True)
    assert [d.slot for d in caught] == [MONDAY_17 - timedelta(seconds=n) for n in range(4, -1, -1)]
