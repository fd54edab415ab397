"""`jetjobs template delete` as a user runs it: what it prints, where the template
still shows, and the one-line errors of everything a deleted template refuses."""

from __future__ import annotations

import json

import pytest

from contracts import api
from contracts.models import RunTemplate
from tests.acceptance.cli import clean_env, jetjobs
from tests.acceptance.test_cli import one_line_error
from tests.stack import running_stack

pytestmark = pytest.mark.timeout(120)


def _row(listing: str, template_id: int) -> list[str] | None:
    return next(
        (line.split() for line in listing.splitlines() if line.split()[:1] == [str(template_id)]), None
    )


async def test_template_delete_prints_what_happened_and_a_deleted_template_refuses_runs_and_changes(
    nats_url: str, database_url: str
) -> None:
    async with running_stack(nats_url, database_url, scheduler=False) as stack:
        env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
        await stack.company("acme")
        app = (await stack.app("-c 'exit 0'")).app.uuid
        nightly = await stack.template(name="nightly", app=app, company="acme", interv="d")
        other = await stack.template(name="other", app=app, company="acme", interv="d")
        job = await stack.final_job((await stack.run(nightly.id)).job_id)

        deleted = await jetjobs("template", "delete", str(nightly.id), env=env)
        assert deleted.code == 0, deleted
        assert deleted.out.strip() == (
            f"template {nightly.id} (nightly) deleted: it never runs again; its jobs stay "
            f"(`jetjobs job list --template {nightly.id}`)"
        )
        as_json = await jetjobs("template", "delete", str(other.id), "--json", env=env)
        assert as_json.code == 0, as_json
        reply = RunTemplate.model_validate(json.loads(as_json.out))
        assert reply.id == other.id and reply.deleted_at is not None

        live = await jetjobs("template", "list", env=env)
        assert live.code == 0 and _row(live.out, nightly.id) is None, live.out
        gone = await jetjobs("template", "list", "--deleted", "--company", "acme", env=env)
        row = _row(gone.out, nightly.id)
        assert row is not None and row[-1] == "deleted", gone.out
        shown = await jetjobs("template", "show", str(nightly.id), env=env)
        assert shown.code == 0 and "DELETED at " in shown.out, shown
        history = await jetjobs("job", "list", "--template", str(nightly.id), env=env)
        assert history.code == 0 and job.id in history.out, history
        assert (await jetjobs("job", "show", job.id, env=env)).code == 0

        why = f"template {nightly.id} (nightly) was deleted at "
        one_line_error(await jetjobs("job", "run", str(nightly.id), env=env), why)
        one_line_error(await jetjobs("template", "update", str(nightly.id), "--pool", "x", env=env), why)
        one_line_error(await jetjobs("template", "pause", str(nightly.id), env=env), why)
        manual = await stack.template(name="manual", app=app, company="acme", interv="n")
        await stack.client.call("template.delete", api.TemplateRef(id=manual.id), RunTemplate)
        backfill = (
            "template",
            "backfill",
            str(manual.id),
            "--from",
            "2026-01-01T00:00:00Z",
            "--to",
            "2026-01-02T00:00:00Z",
        )
        one_line_error(await jetjobs(*backfill, env=env), f"template {manual.id} (manual) was deleted at ")
        one_line_error(await jetjobs("template", "delete", str(nightly.id), env=env), why)
        one_line_error(await jetjobs("template", "delete", "999999", env=env), "unknown template 999999")
