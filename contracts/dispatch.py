"""Turning a template into a job message: pure functions shared by every dispatcher."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime

from .cmdline import PLACEHOLDER, words
from .messages import JobMessage
from .models import ActiveTemplate, Application, Timeouts

_NAMESPACE = uuid.UUID("6f1f4f2e-7a54-4d0e-9a5f-1c2b8e0d9a11")


def scheduled_job_id(template_id: int, slot: datetime) -> str:
    """The job id of a template's slot: the same slot always gives the same id,
    so a second scheduler or a restart is dropped as a duplicate."""
    instant = slot.astimezone(UTC).isoformat(timespec="microseconds")
    return str(uuid.uuid5(_NAMESPACE, f"template:{template_id}:{instant}"))


def adhoc_job_id() -> str:
    """A fresh id for a run nobody scheduled (run-now, replay)."""
    return str(uuid.uuid4())


def keyed_job_id(template_id: int, key: str, moved_to: str | None = None) -> str:
    """The job id of a run-now that names an idempotency key: the same key on the
    same template always gives the same id, so a request sent again (its reply was
    lost, say) finds the run it asked for first instead of starting another. Once
    the key's first run belongs to another company than the template's (it moved
    since), the key gives its new company `moved_to` an id of its own: that
    company's run, not the old one's."""
    if moved_to is None:
        return str(uuid.uuid5(_NAMESPACE, f"run:{template_id}:{key}"))
    return str(uuid.uuid5(_NAMESPACE, f"moved-run:{template_id}:{moved_to}:{key}"))


def _filler(env: Mapping[str, str], keep: Collection[str]) -> Callable[[re.Match[str]], str]:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return match.group(0) if name in keep else env.get(name, "")

    return fill


def expand_argv(
    executable: str, cmdparams: str, env: Mapping[str, str], keep: Collection[str] = ()
) -> list[str]:
    """Split `cmdparams` like a shell would, then fill `${VAR}` / `{VAR}` from env
    inside each word. No shell ever sees the result. A word that was a lone
    placeholder with an empty value is dropped rather than passed as ''.
    Placeholders named in `keep` (secrets) stay for the executor to fill, so
    their values never travel in a message."""
    argv = [executable]
    fill = _filler(env, keep)
    for word in words(cmdparams):
        filled = PLACEHOLDER.sub(fill, word)
        if filled or not PLACEHOLDER.fullmatch(word):
            argv.append(filled)
    return argv


def fill_secrets(argv: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """Fill the placeholders `expand_argv` kept for secrets, once their values are known."""

    def fill(match: re.Match[str]) -> str:
        return values.get(match.group(1) or match.group(2), match.group(0))

    return [argv[0], *(PLACEHOLDER.sub(fill, word) for word in argv[1:])]


def application_env(app: Application) -> dict[str, str]:
    """The defaults an application declares for its environment."""
    return {k: f.default for k, f in app.environment.items() if f.default is not None}


def merged_env(*layers: Mapping[str, str]) -> dict[str, str]:
    """Later layers win: app defaults < credentials < template < run overrides."""
    env: dict[str, str] = {}
    for layer in layers:
        env.update(layer)
    return env


def job_message(
    template: ActiveTemplate,
    *,
    job_id: str,
    slot: datetime,
    now: datetime,
    launched_by: str = "scheduler",
    env_overrides: Mapping[str, str] | None = None,
    timeouts: Timeouts | None = None,
) -> JobMessage:
    """The message that runs `template` for `slot`."""
    env = merged_env(template.env, env_overrides or {})
    secrets = [name for name in template.secrets if name not in env]
    masked = [name for name in template.masked or () if env.get(name)] or None
    limits = timeouts or template.timeouts
    return JobMessage(
        job_id=job_id,
        company=template.company,
        pool=template.pool,
        template_id=template.id,
        app_id=template.app_id,
        argv=expand_argv(template.executable, template.cmdparams, env, keep=secrets),
        env=env,
        scheduled_at=slot,
        dispatched_at=now,
        timeout=limits.timeout,
        timeout_ack=limits.timeout_ack,
        timeout_result=limits.timeout_result,
        retries=template.retries,
        launched_by=launched_by,
        exit_codes=template.exit_codes,
        secrets=secrets,
        masked=masked,
        required=template.required,
        artifacts=template.artifacts,
        image=template.image,
    )
