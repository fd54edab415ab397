"""One typed method per query of `sql/queries.sql`: positional `$n` never leave this module."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from contracts.enums import Status
from contracts.lifecycle import DeadLetterRecord, DeadLetterSummary
from contracts.messages import DeadLetter, JobEvent, JobMessage
from contracts.models import Application, Company, TemplateSpec
from contracts.records import AttemptRecord, JobRecord
from contracts.schedule import SlotRecord

from . import documents, rows
from .db import Db
from .documents import Deadline
from .lifecycle import AttemptState, Plan
from .loader import queries
from .rows import TemplateRow
from .visibility import Reader

JobPlace = tuple[datetime, str]
"""A job's place in the newest-first job list: when it was recorded (`created_at`), then its id."""


class LockedJobs(NamedTuple):
    """The jobs of a batch that have a row, locked until commit: where each one's
    current attempt stands, and whose job it is."""

    states: dict[str, AttemptState]
    companies: dict[str, str]


@dataclass(frozen=True)
class RecordedEvent:
    """An event as the store recorded it."""

    attempt: int
    status: Status
    at: datetime
    stale: bool


def _columns(records: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows to one list per column, for `unnest($1::type[], …)`."""
    return [[record[i] for record in records] for i in range(width)]


FLOW_INBOX_CHANNEL = "jetjobs_flow_inbox"
"""The NOTIFY channel that tells orchestrators the flow inbox got outcomes."""


class Queries:
    """The store's queries, bound to one connection (or the pool)."""

    def __init__(self, db: Db) -> None:
        self._db = db
        self._sql = queries()

    def _q(self, name: str) -> str:
        return self._sql[name].sql

    # migrations

    async def lock_migrations(self, key: int) -> None:
        await self._db.execute(self._q("lock_migrations"), key)

    async def unlock_migrations(self, key: int) -> None:
        await self._db.execute(self._q("unlock_migrations"), key)

    async def lock_board(self, key: int) -> None:
        await self._db.execute(self._q("lock_board"), key)

    async def create_migrations_table(self) -> None:
        await self._db.execute(self._q("create_migrations_table"))

    async def applied_migrations(self) -> list[int]:
        return [r["version"] for r in await self._db.fetch(self._q("applied_migrations"))]

    async def record_migration(self, version: int, name: str) -> None:
        await self._db.execute(self._q("record_migration"), version, name)

    async def enum_labels(self, type_name: str) -> list[str]:
        return [r["enumlabel"] for r in await self._db.fetch(self._q("enum_labels"), type_name)]

    # companies

    async def insert_company(self, company: Company) -> Company | None:
        row = await self._db.fetchrow(
            self._q("insert_company"), company.code, company.name, company.enabled, company.paused
        )
        return None if row is None else rows.company(row)

    async def list_companies(
        self,
        code: str | None,
        reader: Reader,
        offset: int | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[Company]:
        """Companies by code, optionally just one, that `reader` may read; those after
        code `after`, `limit` of them from row `offset` on, when given."""
        found = await self._db.fetch(
            self._q("list_companies"), code, reader.actor, reader.roles, offset, limit, after
        )
        return [rows.company(r) for r in found]

    async def company_by_code(self, code: str) -> Company | None:
        row = await self._db.fetchrow(self._q("company_by_code"), code)
        return None if row is None else rows.company(row)

    # applications

    async def upsert_app(self, app: Application, document: Mapping[str, Any]) -> tuple[Application, bool]:
        """The stored application, and whether it was new."""
        environment = json.dumps({k: v.model_dump() for k, v in app.environment.items()})
        row = await self._db.fetchrow(
            self._q("upsert_app"),
            app.uuid,
            app.name,
            app.description,
            app.executable,
            app.cmdparams,
            environment,
            app.ociimage,
            app.homepage,
            app.tags,
            json.dumps(document),
        )
        return rows.application(row), bool(row["created"])

    async def list_apps(
        self,
        company_id: int | None = None,
        offset: int | None = None,
        limit: int | None = None,
        after: tuple[str, int] | None = None,
    ) -> list[Application]:
        """Applications by name and id; those after (name, id) `after`, `limit` of them
        from row `offset` on, when given."""
        name, app_id = (None, None) if after is None else after
        found = await self._db.fetch(self._q("list_apps"), company_id, offset, limit, name, app_id)
        return [rows.application(r) for r in found]

    async def app_by_id(self, app_id: int) -> Application | None:
        row = await self._db.fetchrow(self._q("app_by_id"), app_id)
        return None if row is None else rows.application(row)

    async def app_by_uuid(self, uuid: str) -> Application | None:
        row = await self._db.fetchrow(self._q("app_by_uuid"), uuid)
        return None if row is None else rows.application(row)

    # templates

    async def insert_template(self, spec: TemplateSpec, app_id: int | None, company_id: int) -> int | None:
        """The new template's id; None when its company already has one of that name."""
        params = rows.template_params(spec, app_id, company_id)
        value = await self._db.fetchval(self._q("insert_template"), *params)
        return None if value is None else int(value)

    async def update_template(
        self, template_id: int, spec: TemplateSpec, app_id: int | None, company_id: int
    ) -> bool:
        params = rows.template_params(spec, app_id, company_id)
        return await self._db.fetchval(self._q("update_template"), template_id, *params) is not None

    async def drop_foreign_credentials(self, template_id: int, company_id: int) -> list[str]:
        """Unassign from the template every credential set not of company `company_id`; their names."""
        found = await self._db.fetch(self._q("drop_foreign_credentials"), template_id, company_id)
        return sorted(row["name"] for row in found)

    async def lock_template(self, template_id: int) -> bool:
        """Lock the template until the transaction ends; False when it does not exist."""
        return await self._db.fetchval(self._q("lock_template"), template_id) is not None

    async def template_id_by_name(self, company_id: int, name: str) -> int | None:
        value = await self._db.fetchval(self._q("template_id_by_name"), company_id, name)
        return None if value is None else int(value)

    async def templates(
        self,
        ids: Sequence[int] | None = None,
        company: str | None = None,
        app_id: int | None = None,
        reader: Reader | None = None,
        offset: int | None = None,
        limit: int | None = None,
        deleted: bool | None = False,
        after: tuple[str, str, int] | None = None,
    ) -> list[TemplateRow]:
        """Templates by company code, name and id, those of companies `reader` may read
        when one is given; those after (company, name, id) `after`, `limit` of them
        from row `offset` on, when given; live ones, or only `deleted` ones (None: both)."""
        actor, roles = (None, None) if reader is None else (reader.actor, reader.roles)
        company_after, name_after, id_after = (None, None, None) if after is None else after
        found = await self._db.fetch(
            self._q("templates"),
            None if ids is None else list(ids),
            company,
            app_id,
            actor,
            roles,
            offset,
            limit,
            deleted,
            company_after,
            name_after,
            id_after,
        )
        return rows.templates(found)

    async def templates_with_secret_values(self) -> list[int]:
        """Templates whose env gives a value to a field their application declares secret."""
        return [int(r["id"]) for r in await self._db.fetch(self._q("templates_with_secret_values"))]

    async def template(self, template_id: int) -> TemplateRow | None:
        """The template, deleted or not."""
        found = await self.templates(ids=[template_id], deleted=None)
        return found[0] if found else None

    # jobs: projection

    async def record_dispatches(
        self, messages: Sequence[JobMessage], deadlines: Sequence[Deadline] = ()
    ) -> list[tuple[str, int]]:
        """Insert jobs (each job id at most once per call) and open their attempts, with
        the `deadlines` of these messages for the reaper when they come from the stream;
        returns (company, count) of the jobs those deadlines bring to the projection first."""
        found = await self._db.fetch(
            self._q("record_dispatches"), documents.dispatches(messages), documents.deadlines(deadlines)
        )
        return [(r["company"], r["jobs"]) for r in found]

    async def reclaim_jobs(self, messages: Sequence[JobMessage]) -> list[tuple[str, str]]:
        """Take back the rows another company's early events made of these jobs; (job
        id, the company whose events made it) of each."""
        found = await self._db.fetch(
            self._q("reclaim_jobs"), documents.document([[m.job_id, m.company, m.attempt] for m in messages])
        )
        return [(r["id"], r["made_by"]) for r in found]

    async def lock_job_ids(self, job_ids: Sequence[str]) -> None:
        """Hold each job id until the transaction ends (another store writing its events waits)."""
        await self._db.fetchval(self._q("lock_job_ids"), documents.document(job_ids))

    async def lock_jobs(self, job_ids: Sequence[str]) -> LockedJobs:
        """Hold each job id like `lock_job_ids`, then read and lock the jobs' rows:
        a job whose dispatch committed meanwhile is seen."""
        found = await self._db.fetch(self._q("lock_jobs"), documents.document(job_ids))
        return LockedJobs(
            {r["id"]: rows.attempt_state(r) for r in found}, {r["id"]: r["company"] for r in found}
        )

    async def record_events(self, events: Sequence[JobEvent], payloads: Sequence[str], changes: Plan) -> None:
        """Apply the fold's `changes` to jobs and attempts, keep each event with its stale
        flag and its JSON `payloads`, give each retry announced its take-by time, and put
        the outcomes of the jobs that run flow nodes into the flow inbox, in one statement
        (and older attempts' errors that came late, in another, when there are any)."""
        await self._db.execute(
            self._q("record_events"),
            documents.states(changes),
            documents.guard(),
            documents.events(events, changes.stale),
            documents.payloads(payloads),
            FLOW_INBOX_CHANNEL,
            documents.retries(changes),
        )
        if changes.late:
            await self.record_late_ends(changes)

    async def record_late_ends(self, changes: Plan) -> None:
        """Give older attempts their errors that came late, in place of a supposed loss."""
        await self._db.execute(self._q("record_late_ends"), documents.late_ends(changes))

    async def record_dead_letters(self, letters: Sequence[tuple[int, DeadLetter]]) -> list[tuple[str, int]]:
        """Insert dead letters, each with its stream sequence; returns (company, count) of the new ones."""
        records = [
            (seq, d.company, d.job_id, d.reason, d.subject, d.payload, json.dumps(d.headers), d.at)
            for seq, d in letters
        ]
        found = await self._db.fetch(self._q("record_dead_letters"), *_columns(records, 8))
        return [(r["company"], r["letters"]) for r in found]

    # jobs: queries

    async def job_by_id(self, job_id: str) -> JobRecord | None:
        """The job row; its attempts come from `job_attempts`."""
        row = await self._db.fetchrow(self._q("job_by_id"), job_id)
        return None if row is None else rows.job_record(row)

    async def job_attempts(self, job_id: str) -> list[AttemptRecord]:
        return [rows.attempt_record(r) for r in await self._db.fetch(self._q("job_attempts"), job_id)]

    async def job_events(self, job_id: str) -> list[RecordedEvent]:
        found = await self._db.fetch(self._q("job_events"), job_id)
        return [RecordedEvent(r["attempt"], Status(r["status"]), r["at"], r["stale"]) for r in found]

    async def list_jobs(
        self,
        company: str | None,
        template_id: int | None,
        status: Status | None,
        limit: int,
        reader: Reader,
        older_than: JobPlace | None = None,
    ) -> list[tuple[JobRecord, JobPlace]]:
        """The newest jobs matching the filters, of companies `reader` may read, those
        after `older_than` in the list when given; each with its place in the list."""
        label = None if status is None else status.value
        created, job_id = older_than or (None, None)
        found = await self._db.fetch(
            self._q("list_jobs"),
            company,
            template_id,
            label,
            limit,
            reader.actor,
            reader.roles,
            created,
            job_id,
        )
        return [(rows.job_record(r), (r["created_at"], r["id"])) for r in found]

    async def dead_letters(self, company: str | None, limit: int) -> list[tuple[int, DeadLetter]]:
        found = await self._db.fetch(self._q("dead_letters"), company, limit)
        return [
            (
                r["stream_seq"],
                DeadLetter(
                    company=r["company"],
                    job_id=r["job_id"],
                    reason=r["reason"],
                    subject=r["subject"],
                    payload=r["payload"],
                    headers=json.loads(r["headers"]),
                    at=r["at"],
                ),
            )
            for r in found
        ]

    # lifecycle: reaper, dead-letter replay

    async def overdue_dispatches(self, limit: int) -> list[Any]:
        """Rows (id, company, pool, attempt, stream_seq, deadline) of jobs nobody took in time."""
        return await self._db.fetch(self._q("overdue_dispatches"), limit)

    async def overdue_retries(self, limit: int) -> list[Any]:
        """Rows (id, company, pool, attempt, stream_seq, deadline, timeout) of jobs whose
        next attempt (`attempt`) no executor took in time."""
        return await self._db.fetch(self._q("overdue_retries"), limit)

    async def orphaned_attempts(
        self, silent_for: float, live_runners: Sequence[str], limit: int
    ) -> list[Any]:
        """Rows (id, company, attempt, runner, status) of jobs whose runner is gone."""
        return await self._db.fetch(self._q("orphaned_attempts"), silent_for, list(live_runners), limit)

    async def unrecorded_jobs(self, quiet_for: float, live_runners: Sequence[str], limit: int) -> list[Any]:
        """Rows (id, company, attempt, runner, status) of unfinished jobs known only from
        their events, unchanged for `quiet_for` seconds and held by no live runner."""
        return await self._db.fetch(self._q("unrecorded_jobs"), quiet_for, list(live_runners), limit)

    async def unrecorded_quiet(self, job_id: str, quiet_for: float) -> bool:
        """Whether the unfinished job is known only from its events, unchanged for `quiet_for` seconds."""
        return bool(await self._db.fetchval(self._q("unrecorded_quiet"), job_id, quiet_for))

    async def earlier_losses(self, attempts: Sequence[tuple[str, int]]) -> dict[str, Any]:
        """Rows (id, stream_seq, lost) by job id: of each (job id, attempt) being ended
        `lost`, how many earlier attempts of its message an executor lost, and where
        that message is in the dispatch stream."""
        found = await self._db.fetch(self._q("earlier_losses"), *_columns(attempts, 2))
        return {r["id"]: r for r in found}

    async def dispatch_of(self, job_id: str) -> int | None:
        """The stream sequence of a job's current message, when known."""
        seq = await self._db.fetchval(self._q("dispatch_of"), job_id)
        return None if seq is None else int(seq)

    async def dead_letter_records(
        self, company: str | None, limit: int, reader: Reader, before: int | None = None
    ) -> list[DeadLetterSummary]:
        """The newest dead letters (older than letter `before`, when given) of companies
        `reader` may read, without their messages."""
        found = await self._db.fetch(
            self._q("dead_letter_records"), company, limit, reader.actor, reader.roles, before
        )
        return [rows.dead_letter_summary(r) for r in found]

    async def dead_letter(self, letter_id: int) -> DeadLetterRecord | None:
        row = await self._db.fetchrow(self._q("dead_letter"), letter_id)
        return None if row is None else rows.dead_letter_record(row)

    async def dead_letter_by_id(self, letter_id: int) -> DeadLetterRecord | None:
        """The dead letter, locked until the transaction ends."""
        row = await self._db.fetchrow(self._q("dead_letter_by_id"), letter_id)
        return None if row is None else rows.dead_letter_record(row)

    async def mark_replayed(self, letter_id: int, attempt: int) -> None:
        await self._db.execute(self._q("mark_replayed"), letter_id, attempt)

    async def reopen_job(self, job_id: str, attempt: int, dispatched_at: datetime) -> None:
        await self._db.execute(self._q("reopen_job"), job_id, attempt, dispatched_at)

    # schedule slots

    async def record_slots(self, records: Sequence[SlotRecord]) -> set[tuple[int, str]]:
        """Insert or upgrade slot records (each (template, slot) at most once per call);
        the templates of those not recorded, as another company's."""
        rows_ = [
            (
                r.template_id,
                r.slot,
                r.company,
                r.outcome.value,
                None if r.reason is None else r.reason.value,
                r.detail,
                r.trigger.value,
                r.job_id,
                r.scheduled_at,
                r.lateness,
                r.scheduler,
                r.recorded_at,
                r.flow_run,
            )
            for r in records
        ]
        found = await self._db.fetch(self._q("record_slots"), *_columns(rows_, 13))
        return {(r["template_id"], r["company"]) for r in found}
