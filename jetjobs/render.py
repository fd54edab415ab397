"""Printing records for people (tables) and for scripts (`--json`)."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from contracts.enums import Interval
from contracts.models import RunTemplate, cron_for
from contracts.records import JobRecord
from contracts.tenants import TemplateEnv


def as_json(value: BaseModel | Sequence[BaseModel]) -> str:
    """Machine output: the contract models' own JSON."""
    if isinstance(value, BaseModel):
        return value.model_dump_json(indent=2)
    return json.dumps([item.model_dump(mode="json") for item in value], indent=2)


def _caret(code: int) -> str:
    """A control character as `cat -v` shows it: `^[` for ESC, `^?` for DEL, `M-^[` for CSI."""
    if code == 0x7F:
        return "^?"
    if code >= 0x80:
        return "M-" + _caret(code - 0x80)
    return "^" + chr(code + 0x40)


KEPT_CONTROLS = "\n\t\r"
"""What a job's output keeps on a terminal: line breaks, tabs and carriage returns
(a progress bar redraws its line) move the cursor but change no terminal state."""

ON_A_TERMINAL = {
    code: _caret(code) for code in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if chr(code) not in KEPT_CONTROLS
}
"""Every other C0 and C1 control, and DEL, shown instead of obeyed: a job must not
retitle, recolour or write the clipboard of (OSC 52) the terminal of whoever reads
its output."""

IN_A_CELL = {code: _caret(code) for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
"""Every control character, line breaks and tabs too, in a table's cell: a name holding
one (a company's, given through the API) would break the table's lines and columns,
or act on the terminal of whoever lists it."""

TO_A_FILE = {0: "\ufffd"}
"""Piped or redirected output is left as the job wrote it but for NUL, replaced as
the store replaces it in what it keeps (Postgres text cannot hold it)."""


def job_text(text: str, terminal: bool) -> str:
    """What a job wrote or was given (output, results, reasons, argv) as it may be
    printed: with its control characters shown in `cat -v` notation when it goes to
    a terminal."""
    return text.translate(ON_A_TERMINAL if terminal else TO_A_FILE)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).translate(IN_A_CELL)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain aligned table; empty input says so instead of printing nothing."""
    if not rows:
        return "(none)"
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def duration(job: JobRecord) -> str:
    """Run time of the latest attempt, when it has both ends."""
    if job.begin and job.end:
        return f"{(job.end - job.begin).total_seconds():.3f}s"
    return "-"


def outcome(job: JobRecord) -> str:
    """`processed`, or `error (exit, code 3)`-style summary."""
    if job.kind is None:
        return job.status.value
    detail = f", exit code {job.exit_code}" if job.exit_code is not None else ""
    return f"{job.status.value} ({job.kind.value}{detail})"


def job_detail(job: JobRecord, terminal: bool | None = None) -> str:
    """Everything about one job, attempts included, to print on stdout: what the job
    wrote is shown escaped when that is a terminal (`job_text`), or when `terminal` says."""
    shown = functools.partial(job_text, terminal=sys.stdout.isatty() if terminal is None else terminal)
    lines = [
        f"job        {job.id}",
        f"company    {job.company}   pool {_cell(job.pool)}   template {_cell(job.template_id)}",
        f"status     {outcome(job)}{'' if job.final else '  (not final)'}",
        f"attempt    {job.attempt}",
        f"argv       {shown(' '.join(job.argv)) if job.argv else '-'}",
        f"scheduled  {_cell(job.scheduled_at)}   began {_cell(job.begin)}   ended {_cell(job.end)}"
        f"   ({duration(job)})",
        f"runner     {_cell(job.runner)}   pid {_cell(job.pid)}   launched by {_cell(job.launched_by)}",
    ]
    if job.reason:
        lines.append(f"reason     {shown(job.reason)}")
    for name, text in (("stdout", job.stdout), ("stderr", job.stderr)):
        if text:
            lines.append(f"--- {name}\n{shown(text.rstrip())}")
    current = next((a for a in job.attempts if a.attempt == job.attempt), None)
    if current is not None and current.results:
        lines.append("--- results")
        lines.extend(f"{shown(key)}={shown(value)}" for key, value in sorted(current.results.items()))
    if len(job.attempts) > 1:
        rows = [
            (a.attempt, a.status.value, a.kind, a.exit_code, a.runner, a.begin, a.end) for a in job.attempts
        ]
        lines.append(table(rows, ["attempt", "status", "kind", "exit", "runner", "begin", "end"]))
    return "\n".join(lines)


def _schedule(t: RunTemplate) -> str:
    if t.interv is Interval.NONE:
        return "manual only (interval n)"
    return f"interval {t.interv.value}: cron {cron_for(t.interv, t.cron)} in {t.timezone}"


def _state(t: RunTemplate) -> str:
    if t.deleted_at is not None:
        return f"DELETED at {t.deleted_at:%Y-%m-%d %H:%M:%S %Z} (never runs again; its jobs stay)"
    active = "active" if t.active else "inactive (--active false: never scheduled)"
    return f"{active}, {'PAUSED (slots are skipped)' if t.paused else 'not paused'}"


def _env_lines(t: RunTemplate, env: TemplateEnv | None) -> list[str]:
    """The template's own variables, masked where the app declares them secret."""
    shown = {e.name: e.value for e in env.entries if e.source == "template"} if env else {}
    return [f"{key}={shown.get(key, value)}" for key, value in sorted(t.env.items())] or ["-"]


def _credentials(env: TemplateEnv) -> str:
    """The credential sets that give the template a value, each with its variables."""
    sets: dict[str, list[str]] = {}
    for entry in env.entries:
        if entry.source.startswith("credential "):
            sets.setdefault(entry.source.removeprefix("credential "), []).append(entry.name)
    return ", ".join(f"{name} ({', '.join(fields)})" for name, fields in sorted(sets.items())) or "-"


def template_detail(t: RunTemplate, env: TemplateEnv | None) -> str:
    """Everything about one template; `env` (an app template's merged env) names
    its credential sets and masks secrets."""
    runs = f"app {t.app} (id {t.app_id})" if t.flow is None else f"flow {t.flow}"
    timeouts = t.timeouts
    env_lines = _env_lines(t, env)
    lines = [
        f"template     {t.id} ({t.name})   company {t.company}",
        f"runs         {runs}",
        f"schedule     {_schedule(t)}",
        f"state        {_state(t)}",
        f"pool         {t.pool}   retries {t.retries}",
        f"timeouts     {timeouts.timeout:g} s to be taken, {timeouts.timeout_ack:g} s to acknowledge, "
        f"{timeouts.timeout_result:g} s to the result",
        f"policies     overlap {t.overlap.value}, misfire {t.misfire.value}, "
        f"catch-up limit {t.catch_up_limit}, jitter {t.jitter:g} s",
        f"env          {env_lines[0]}",
        *(f"             {line}" for line in env_lines[1:]),
    ]
    if env is not None:
        lines.append(f"credentials  {_credentials(env)}")
    if env is not None and env.missing:
        lines.append(f"missing      {', '.join(env.missing)} (required: runs fail as invalid)")
    return "\n".join(lines)
