"""Changes to the catalog while jobs are under way: a deleted template's queued job
keeps its credential set, a keyed run of a moved template is its new company's own,
and the slot a template's old company fired just before it moved is recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from bus import Layout, encode
from contracts import api
from contracts import subjects as s
from contracts import tenants as t
from contracts.api import ApiFailure
from contracts.dispatch import keyed_job_id, scheduled_job_id
from contracts.enums import ErrorKind, Status
from contracts.messages import JobMessage
from contracts.models import RunTemplate
from contracts.schedule import SlotOutcome, SlotRecord
from executor import ExecutorConfig, ExecutorService
from store.credentials import new_key
from tests.stack import Stack, eventually, running_stack

from .tenants_stack import keyring, tenant_stack

pytestmark = pytest.mark.timeout(120)

IDLE = "idle"
"""A pool no executor serves until the test starts one."""


async def _move(stack: Stack, template_id: int, company: str) -> None:
    update = api.TemplateUpdate(id=template_id, changes={"company": company})
    await stack.client.call("template.update", update, RunTemplate)


async def test_a_deleted_templates_queued_job_keeps_its_credential_set(
    nats_url: str, database_url: str
) -> None:
    async with tenant_stack(nats_url, database_url, keyring(new_key())) as stack:
        await stack.company("acme")
        app = await stack.app("-c 'echo \"pw=$PW\"'", env={"PW": {"type": "password"}})
        creds = t.CredentialSet(company="acme", name="abra", values={"PW": "abra-7"})
        await stack.client.call("credential.set", creds, t.CredentialInfo)
        template = await stack.template(name="t", app=str(app.app.id), company="acme", pool=IDLE)
        assert template.id is not None
        assign = t.CredentialAssign(template_id=template.id, name="abra")
        await stack.client.call("credential.assign", assign, t.Assigned)
        job_id = (await stack.run(template.id)).job_id
        await eventually(lambda: stack.jobs(template_id=template.id), what="the queued job's row")
        await stack.client.call("template.delete", api.TemplateRef(id=template.id), RunTemplate)

        ref = t.CredentialRef(company="acme", name="abra")
        with pytest.raises(ApiFailure) as refused:
            await stack.client.call("credential.delete", ref, t.CredentialInfo)
        assert refused.value.code == 409
        assert refused.value.message == (
            f"credential set acme/abra is still needed by unfinished job {job_id} (template {template.id}), "
            "whose attempts fetch its values: wait for it to end (`jetjobs job show JOB`), "
            "or cancel it (`jetjobs job cancel JOB`), then delete it again"
        )

        config = ExecutorConfig(nats_url=nats_url, pool=IDLE, slots=1)
        executor = ExecutorService(config, Layout())
        await executor.start()
        try:
            job = await stack.final_job(job_id, timeout=40)
        finally:
            await executor.stop()
        assert (job.status, job.kind, job.stdout) == (Status.PROCESSED, None, "pw=********\n"), job.reason
        deleted = await stack.client.call("credential.delete", ref, t.CredentialInfo)
        assert deleted.name == "abra", "once its jobs have ended, the set may go"


async def test_a_keyed_run_of_a_moved_template_is_its_new_companys_own(
    nats_url: str, database_url: str
) -> None:
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        for company in ("acme", "beta"):
            await stack.company(company)
        app = await stack.app("-c 'echo ran'")
        template = await stack.template(name="deploy", app=str(app.app.id), company="acme")
        assert template.id is not None
        run = api.RunNow(id=template.id, key="deploy-42")

        first = await stack.client.call("template.run", run, api.JobQueued)
        assert (first.job_id, first.company) == (keyed_job_id(template.id, "deploy-42"), "acme")
        assert (await stack.final_job(first.job_id)).status is Status.PROCESSED
        await _move(stack, template.id, "beta")

        moved = await stack.client.call("template.run", run, api.JobQueued)
        assert (moved.company, moved.existing) == ("beta", None), "a new run, not acme's"
        assert moved.job_id != first.job_id
        job = await stack.final_job(moved.job_id)
        assert (job.company, job.status, job.stdout) == ("beta", Status.PROCESSED, "ran\n")
        again = await stack.client.call("template.run", run, api.JobQueued)
        assert (again.job_id, again.company, again.existing) == (moved.job_id, "beta", True)

        await _move(stack, template.id, "acme")
        back = await stack.client.call("template.run", run, api.JobQueued)
        assert (back.job_id, back.company, back.existing) == (first.job_id, "acme", True)


async def test_a_slot_its_old_company_fired_before_the_move_is_recorded(
    nats_url: str, database_url: str
) -> None:
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        for company in ("acme", "beta"):
            await stack.company(company)
        app = await stack.app("-c 'echo ran'")
        template = await stack.template(name="tick", app=str(app.app.id), company="acme", pool=IDLE)
        other = await stack.template(name="other", app=str(app.app.id), company="acme", pool=IDLE)
        assert template.id is not None and other.id is not None
        slot = datetime.now(UTC).replace(microsecond=0)
        job_id = scheduled_job_id(template.id, slot)
        # what the scheduler sends for the slot, with the template as it knew it: acme's
        fired = _message(job_id, template.id, slot)
        await stack.bus.publisher.dispatch([fired])
        await eventually(lambda: stack.jobs(template_id=template.id), what="the slot's job row")
        await _move(stack, template.id, "beta")

        await _record(stack, _slot(template.id, slot, job_id))
        rows = await eventually(lambda: _slot_rows(database_url, template.id), what="the slot's record")
        assert rows == [("acme", job_id)]

        # acme's record of a slot of beta's template whose job is not a job of that template stays refused
        forged = _message(scheduled_job_id(other.id, slot), other.id, slot)
        await stack.bus.publisher.dispatch([forged])
        await eventually(lambda: stack.jobs(template_id=other.id), what="acme's other job")
        later = slot + timedelta(seconds=1)
        subject = await _record(stack, _slot(template.id, later, forged.job_id))
        letters = await eventually(
            lambda: _letters(database_url, subject), what="the refused record's letter"
        )
        assert letters == [("acme", f"company 'acme' has no template {template.id}")]
        assert await _slot_rows(database_url, template.id) == [("acme", job_id)]


async def test_an_invalid_jobs_dead_letter_says_why_its_retries_went_unused(
    nats_url: str, database_url: str
) -> None:
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        await stack.company("acme")
        app = await stack.app("", executable="/nonexistent/jetjobs-fm1")
        template = await stack.template(name="broken", app=str(app.app.id), company="acme", retries=2)
        assert template.id is not None
        job = await stack.final_job((await stack.run(template.id)).job_id)
        assert (job.status, job.kind, job.attempt) == (Status.ERROR, ErrorKind.INVALID, 1)
        [reason] = await eventually(lambda: _job_letters(database_url, job.id), what="the job's dead letter")
        assert reason == (
            f"attempt 1 failed (invalid: {job.reason}): it cannot run as it is, so it is not retried; "
            "fix what the reason names, then replay it (`jetjobs dlq replay`)"
        )


def _message(job_id: str, template_id: int, slot: datetime) -> JobMessage:
    return JobMessage(
        job_id=job_id,
        company="acme",
        pool=IDLE,
        template_id=template_id,
        argv=["sh", "-c", "echo ran"],
        scheduled_at=slot,
        dispatched_at=slot,
        timeout=600,
        timeout_ack=60,
        timeout_result=60,
    )


def _slot(template_id: int, slot: datetime, job_id: str) -> SlotRecord:
    return SlotRecord(
        template_id=template_id,
        company="acme",
        slot=slot,
        outcome=SlotOutcome.FIRED,
        job_id=job_id,
        recorded_at=datetime.now(UTC),
    )


async def _record(stack: Stack, record: SlotRecord) -> str:
    """Publish a slot record on its company's subject, as the scheduler does; the subject."""
    subject = s.slots_subject(record.company, record.template_id)
    await stack.bus.publisher.publish(subject, encode(record), f"slot-{record.template_id}-{record.slot}")
    return subject


async def _slot_rows(database_url: str, template_id: int) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(database_url)
    try:
        found = await conn.fetch(
            "SELECT company, job_id FROM schedule_slot WHERE template_id = $1 ORDER BY slot", template_id
        )
    finally:
        await conn.close()
    return [(r["company"], r["job_id"]) for r in found]


async def _letters(database_url: str, subject: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(database_url)
    try:
        found = await conn.fetch("SELECT company, reason FROM dead_letter WHERE subject = $1", subject)
    finally:
        await conn.close()
    return [(r["company"], r["reason"]) for r in found]


async def _job_letters(database_url: str, job_id: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        return [
            r["reason"] for r in await conn.fetch("SELECT reason FROM dead_letter WHERE job_id = $1", job_id)
        ]
    finally:
        await conn.close()
