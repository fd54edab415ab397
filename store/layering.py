"""Configuration layering, lowest first: application defaults < company
credentials < template overrides < run-now overrides. Pure functions, so the
board, run-now and `template env` agree on every value and its source."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from contracts.base import RESERVED_ENV
from contracts.masks import MASK
from contracts.models import ActiveTemplate, Application
from contracts.tenants import EnvEntry, TemplateEnv

from .tenant_queries import TemplateExtras


def with_extras(
    template: ActiveTemplate,
    app: Application,
    template_env: Mapping[str, str],
    extras: TemplateExtras | None,
    sealed: Collection[str] = (),
) -> ActiveTemplate:
    """The scheduled view with credentials and the template's sealed secret values as
    references: a credential field the template does not override, and a secret field
    whose value the template keeps sealed, replace the app default and travel by name
    only (`secrets.fetch` gives the template's value over a credential's)."""
    fields = extras.credential_fields if extras else frozenset()
    secrets = sorted((fields | set(sealed)) - set(template_env))
    env = {k: v for k, v in template.env.items() if k not in secrets}
    return template.model_copy(
        update={
            "env": env,
            "secrets": secrets,
            "required": sorted(name for name, spec in app.environment.items() if spec.required),
            "artifacts": extras.artifacts if extras else [],
            "exit_codes": extras.exit_codes if extras else None,
            "image": app.ociimage,
        }
    )


def _entry(
    name: str,
    app: Application,
    template_env: Mapping[str, str],
    credentials: Mapping[str, str],
    sealed: Collection[str],
) -> EnvEntry:
    declared = app.environment.get(name)
    secret = bool(declared and declared.secret)
    required = bool(declared and declared.required)
    if name in sealed:
        value, source, secret = MASK, "template", True
    elif name in template_env:
        value, source = template_env[name], "template"
    elif name in credentials:
        value, source, secret = MASK, f"credential {credentials[name]}", True
    elif declared is not None and declared.default is not None:
        value, source = declared.default, "app default"
    else:
        return EnvEntry(name=name, value=None, source="unset", secret=secret, required=required)
    shown = MASK if secret and value else value
    return EnvEntry(name=name, value=shown, source=source, secret=secret, required=required)


def template_env(
    template_id: int,
    app: Application,
    template_env: Mapping[str, str],
    credentials: Mapping[str, str],
    sealed: Collection[str] = (),
) -> TemplateEnv:
    """Every variable with its winning value (secrets masked) and where it came from.
    `credentials` maps each credential-provided field to its set's name; `sealed` names
    the secret fields whose values the template keeps sealed. A name jetjobs sets for
    every job is left out: a value an app or credential set stored for it before such
    names were refused is not what the job gets."""
    given = set(app.environment) | set(credentials) | set(template_env) | set(sealed)
    names = sorted(given - RESERVED_ENV)
    entries = [_entry(name, app, template_env, credentials, sealed) for name in names]
    missing = [e.name for e in entries if e.required and not e.value]
    return TemplateEnv(template_id=template_id, entries=entries, missing=missing)
