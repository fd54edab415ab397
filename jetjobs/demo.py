"""The demo `jetjobs up --demo` installs: a company, an app, two templates,
and a printer that shows each job's outcome as it happens."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime

from bus import ApiClient, Bus, live_events
from contracts import api
from contracts import schedule as sc
from contracts import subjects as s
from contracts.api import ApiFailure
from contracts.enums import Interval
from contracts.messages import JobEvent
from contracts.models import Company, RunTemplate, TemplateSpec

from . import render
from .cli_schedule import SCHEDULED, schedule_state
from .commands import every_template

COMPANY = "demo"

APP = {
    "uuid": "5b7f3c9e-2d41-4a8e-9c1f-6e0a7d3b2c15",
    "name": "jetjobs greeter",
    "description": "Prints a greeting; exits with DEMO_EXIT",
    "executable": "sh",
    "cmdparams": "-c 'echo \"$GREETING from jetjobs (job $JETJOBS_JOB_ID)\"; exit ${DEMO_EXIT:-0}'",
    "environment": {
        "GREETING": {"type": "string", "description": "what to say", "defval": "Hello", "required": True},
        "DEMO_EXIT": {"type": "string", "description": "exit code to end with", "defval": "0"},
    },
}


SAID = {("hello", "*/5 * * * * *"): "every 5 s", ("grumpy", "*/20 * * * * *"): "every 20 s, fails"}
"""How the demo's templates are announced while they keep the schedule it gave them."""


def templates(app_uuid: str) -> list[TemplateSpec]:
    """Every 5 s a greeting that succeeds, every 20 s one that fails with exit 3."""
    return [
        TemplateSpec(
            name="hello", app=app_uuid, company=COMPANY, interv=Interval.CUSTOM, cron="*/5 * * * * *"
        ),
        TemplateSpec(
            name="grumpy",
            app=app_uuid,
            company=COMPANY,
            interv=Interval.CUSTOM,
            cron="*/20 * * * * *",
            env={"GREETING": "Grumble", "DEMO_EXIT": "3"},
        ),
    ]


async def install(client: ApiClient) -> list[RunTemplate]:
    """Create what the demo needs, leaving what a previous run created as it was left
    (made inactive, paused, rescheduled, deleted); returns the demo's templates."""
    try:
        await client.call("company.create", Company(code=COMPANY, name="Demo Company"), Company)
    except ApiFailure as failure:
        if failure.code != 409:
            raise
    imported = await client.call("app.import", api.AppImport(document=APP, source="demo"), api.AppImported)
    kept = {t.name: t for t in await every_template(client, COMPANY, deleted=True)}  # stays deleted
    kept |= {t.name: t for t in await every_template(client, COMPANY, deleted=False)}
    return [
        kept.get(spec.name) or await client.call("template.create", spec, RunTemplate)
        for spec in templates(imported.app.uuid)
    ]


async def announce(client: ApiClient, installed: list[RunTemplate]) -> str:
    """Which of the demo's templates will run, as they are now; a line for each that
    will not, saying why."""
    running: list[str] = []
    idle: list[str] = []
    for template in installed:
        request = sc.ExplainRequest(id=template.id, next=0, last=0)
        explained = await client.call("template.explain", request, sc.Explanation)
        state = schedule_state(explained)
        if state == SCHEDULED:
            running.append(f"'{explained.name}' ({_when(explained)})")
        else:
            idle.append(f"demo: '{explained.name}' {state}")
    if not running:
        return "\n".join([f"demo: company '{COMPANY}', no template will run", *idle])
    listed = running[0] if len(running) == 1 else f"{', '.join(running[:-1])} and {running[-1]}"
    plural = "s" if len(running) > 1 else ""
    return "\n".join([f"demo: company '{COMPANY}', template{plural} {listed}", *idle])


def _when(explained: sc.Explanation) -> str:
    return SAID.get(
        (explained.name, explained.cron or ""), f"cron '{explained.cron}' in {explained.timezone}"
    )


def describe_outcome(event: JobEvent, terminal: bool) -> str:
    """One line per finished job, its whole id to paste into `jetjobs job show`; what
    the job wrote escaped for a `terminal` (`render.job_text`)."""
    took = f"{(event.end - event.begin).total_seconds():.3f}s" if event.begin and event.end else "-"
    first_line = "".join((event.stdout or event.stderr or "").strip().splitlines()[:1])
    detail = f"exit {event.exit_code}" if event.exit_code is not None else (event.reason or "")
    kind = f" {event.kind.value}" if event.kind else ""
    at = datetime.now().strftime("%H:%M:%S")
    said = render.job_text(f"({detail}) in {took}: {first_line}", terminal)
    return f"[{at}] job {event.job_id} {event.status.value}{kind} {said}"


async def print_outcomes(bus: Bus, announced: asyncio.Event) -> None:
    """Print every final outcome in the demo company until cancelled, each after the
    demo's announcement (an outcome that comes first waits for it)."""
    async for event in live_events(bus.nc, s.events_filter(COMPANY)):
        if event.final:
            await announced.wait()
            print(describe_outcome(event, sys.stdout.isatty()), flush=True)
