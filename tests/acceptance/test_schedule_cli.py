"""`jetjobs template explain` as a user runs it, against a leading scheduler on real servers."""

from __future__ import annotations

import json

import pytest

from contracts import schedule as sc
from contracts.schedule import SlotOutcome
from tests.acceptance.cli import clean_env, jetjobs
from tests.acceptance.test_cli import one_line_error
from tests.stack import Stack, eventually, running_stack

pytestmark = pytest.mark.timeout(90)


async def _explained(stack: Stack, template_id: int) -> sc.Explanation:
    request = sc.ExplainRequest(id=template_id, next=3, last=50)
    return await stack.client.call("template.explain", request, sc.Explanation)


async def _fired_and_finished(stack: Stack, template_id: int) -> sc.SlotView | None:
    views = (await _explained(stack, template_id)).slots
    return next((v for v in views if v.record.outcome is not SlotOutcome.SKIPPED and v.job_final), None)


async def test_template_explain_shows_zone_leader_next_fires_and_each_slots_outcome(
    nats_url: str, database_url: str
) -> None:
    async with running_stack(nats_url, database_url) as stack:
        env = clean_env(JETJOBS_NATS_URL=stack.nats_url)
        await stack.company("acme")
        app = await stack.app("-c 'exit 3'")
        values = {"app": app.app.uuid, "company": "acme", "interv": "c", "cron": "* * * * * *"}
        failing = await stack.template(name="every-second", timezone="Asia/Kolkata", **values)
        view = await eventually(lambda: _fired_and_finished(stack, failing.id), 30, "a finished run")
        assert view.record.job_id is not None

        result = await jetjobs("template", "explain", str(failing.id), "--next", "2", env=env)
        assert result.code == 0, result
        lines = result.out.splitlines()
        assert lines[0] == f"template {failing.id} (every-second) of company acme: scheduled"
        assert "* * * * * * in Asia/Kolkata" in lines[1]
        assert lines[2].startswith("scheduler: leader jetjobs-scheduler@")
        fires = lines[lines.index("next fire times:") + 1 :][:2]
        assert all("+05:30  (" in line and line.endswith("+00:00)") for line in fires), fires
        row = next(line for line in lines if view.record.job_id in line)
        assert "error (exit)" in row and "schedule" in row

        assert (await jetjobs("template", "pause", str(failing.id), env=env)).code == 0

        async def paused_slot() -> bool:
            views = (await _explained(stack, failing.id)).slots
            return any(v.record.reason is sc.SlotReason.PAUSED for v in views)

        await eventually(paused_slot, 20, "a slot skipped while paused")
        result = await jetjobs("--json", "template", "explain", str(failing.id), env=env)
        assert result.code == 0, result
        explanation = sc.Explanation.model_validate(json.loads(result.out))
        assert explanation.paused and explanation.leader is not None
        assert len(explanation.next) == 5
        human = await jetjobs("template", "explain", str(failing.id), env=env)
        assert "paused: slots are recorded as skipped" in human.out.splitlines()[0]
        assert "skipped (paused)" in human.out
        listed = await jetjobs("template", "list", env=env)
        row = next(line for line in listed.out.splitlines() if line.split()[:1] == [str(failing.id)])
        assert row.split()[-1] == "paused", listed.out  # active, but nothing fires

        one_line_error(await jetjobs("template", "explain", "999999", env=env), "999999")
