"""Reading MultiFlexi app JSON in all its real variants (old and v3)."""

from __future__ import annotations

import uuid
from typing import Any

from . import multiflexi_extras as extras
from .base import reserved_refusal
from .cmdline import CommandLineError, placeholders, words
from .models import Application, EnvField

_NAMESPACE = uuid.UUID("0b5e3c1a-2f6d-4c8e-9b7a-5d4e3f2a1b0c")

KNOWN_KEYS = frozenset(
    {
        "$schema",
        "schemaVersion",
        "multiflexi",
        "uuid",
        "name",
        "description",
        "executable",
        "cmdparams",
        "cmdparamsTemplate",
        "environment",
        "ociimage",
        "homepage",
        "topics",
        "tags",
        "image",
        "setup",
        "deploy",
        "requirements",
        "artifacts",
        "exitCodes",
    }
)
UNUSED_KEYS = ("image", "setup", "deploy", "requirements")
"""Keys jetjobs reads but does not act on: said in a warning when they hold something."""
ENV_KEYS = frozenset({"type", "description", "defval", "required", "hint", "options", "category", "name"})
ENV_UNUSED = ("hint", "options", "category", "name")
"""Field keys jetjobs keeps in the imported document (so `app export` gives them
back) but does not act on: said in one warning."""


class AppFileError(ValueError):
    """An app definition jetjobs cannot run; the message names the field."""


def localized(value: Any) -> str:
    """MultiFlexi v3 localizes texts as {"en": ..., "cs": ...}: prefer English."""
    if isinstance(value, dict):
        text = value.get("en", next(iter(value.values()), ""))
        return str(text) if text is not None else ""
    return "" if value is None else str(value)


def _text_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _env_field(name: str, spec: Any, warnings: list[str]) -> EnvField:
    refusal = reserved_refusal(name)
    if refusal:
        raise AppFileError(f"environment.{name}: {refusal}")
    if not isinstance(spec, dict):
        raise AppFileError(f"environment.{name}: expected an object with type/defval/required")
    unknown = sorted(set(spec) - ENV_KEYS)
    if unknown:
        warnings.append(f"environment.{name}: ignoring {', '.join(unknown)}")
    kind = str(spec.get("type", "string"))
    return EnvField(
        type=kind,
        description=localized(spec.get("description")),
        default=_text_value(spec.get("defval")),
        required=bool(spec.get("required", False)),
        secret=kind == "password",
    )


def _environment(raw: Any, warnings: list[str]) -> dict[str, EnvField]:
    if raw in (None, [], ""):
        return {}
    if not isinstance(raw, dict):
        raise AppFileError("environment: expected an object mapping variable names to fields")
    return {str(name): _env_field(str(name), spec, warnings) for name, spec in raw.items()}


def _tags(raw: dict[str, Any]) -> list[str]:
    tags = raw.get("tags")
    if isinstance(tags, list):
        return [str(t) for t in tags]
    topics = raw.get("topics")
    if isinstance(topics, str):
        return [t.strip() for t in topics.split(",") if t.strip()]
    return []


def _app_uuid(raw: dict[str, Any], name: str, executable: str, warnings: list[str]) -> str:
    value = raw.get("uuid")
    if value:
        try:
            return str(uuid.UUID(str(value)))
        except ValueError:
            raise AppFileError(f"uuid: {value!r} is not a UUID") from None
    warnings.append("uuid: missing, derived from name and executable (re-imports stay stable)")
    return str(uuid.uuid5(_NAMESPACE, f"{name}\0{executable}"))


def parse_app(raw: Any) -> tuple[Application, list[str]]:
    """An Application from a MultiFlexi app document, plus what was ignored.
    Refuses only what cannot run: a document without an executable."""
    if not isinstance(raw, dict):
        raise AppFileError("expected a JSON object at the top level")
    executable = str(raw.get("executable") or "").strip()
    if not executable:
        raise AppFileError("executable: missing; an application needs the program to run")
    warnings: list[str] = []
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        warnings.append(f"ignoring unknown fields: {', '.join(unknown)}")
    unused = [key for key in UNUSED_KEYS if raw.get(key)]
    if unused:
        warnings.append(f"not used by jetjobs: {', '.join(unused)}")
    name = localized(raw.get("name")) or executable
    cmdparams = str(raw.get("cmdparamsTemplate") or raw.get("cmdparams") or "")
    try:
        words(cmdparams)
    except CommandLineError as error:
        raise AppFileError(str(error)) from None
    app = Application(
        uuid=_app_uuid(raw, name, executable, warnings),
        name=name,
        description=localized(raw.get("description")),
        executable=executable,
        cmdparams=cmdparams,
        environment=_environment(raw.get("environment"), warnings),
        ociimage=str(raw.get("ociimage") or ""),
        homepage=str(raw.get("homepage") or ""),
        tags=_tags(raw),
        **_extras(raw, warnings),
    )
    warnings += _env_notes(raw.get("environment"), app)
    return app, warnings


def _env_notes(raw: Any, app: Application) -> list[str]:
    """What of the environment declarations jetjobs does not act on."""
    notes = []
    fields = raw if isinstance(raw, dict) else {}
    for key in ENV_UNUSED:
        holders = [str(name) for name, spec in fields.items() if isinstance(spec, dict) and spec.get(key)]
        if holders:
            notes.append(f"environment: {key} of {', '.join(holders)} kept but not used by jetjobs")
    undeclared = [name for name in placeholders(app.cmdparams) if name not in app.environment]
    if undeclared:
        notes.append(
            f"cmdparams: {', '.join(undeclared)} not declared in environment: "
            "filled only when a template or run sets it, otherwise empty (a word of its own is left out)"
        )
    return notes


def _extras(raw: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    try:
        return {
            "artifacts": extras.artifacts(raw.get("artifacts")),
            "exit_codes": extras.exit_codes(raw.get("exitCodes"), warnings),
        }
    except extras.ExtrasError as error:
        raise AppFileError(str(error)) from None
