"""Reading MultiFlexi app JSON in all its real variants (old and v3)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from . import multiflexi_extras as extras
from .base import ENV_NAME, NAME_RULE, reserved_refusal
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


_FLAGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False, "": False}
"""How exports that write `required` as text or a number mean it."""


def _text_value(field: str, value: Any) -> str | None:
    """A value that must be text (numbers and booleans are written as JSON gives them):
    a list or an object would otherwise be stored as its Python form, and a NUL byte
    can be neither stored nor given to a program."""
    if value is None:
        return None
    if isinstance(value, (list, dict)):
        raise AppFileError(
            f"{field}: expected text, not a JSON {'array' if isinstance(value, list) else 'object'}"
        )
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if "\x00" in text:
        raise AppFileError(
            f"{field}: holds a NUL byte (\\u0000), which no program or variable can take: remove it"
        )
    return text


def _text_field(raw: dict[str, Any], key: str) -> str:
    """A top-level text field of the document, empty when missing or empty."""
    return _text_value(key, raw.get(key) or "") or ""


def _flag(field: str, value: Any) -> bool:
    """A yes/no field: a JSON boolean, or the text or number some exports write."""
    if isinstance(value, bool):
        return value
    flag = _FLAGS.get(str(value).strip().lower()) if isinstance(value, (str, int)) else None
    if flag is None:
        raise AppFileError(f"{field}: expected true or false, not {value!r}")
    return flag


def _env_field(name: str, spec: Any, warnings: list[str]) -> EnvField:
    refusal = reserved_refusal(name)
    if refusal:
        raise AppFileError(f"environment.{name}: {refusal}")
    if not re.fullmatch(ENV_NAME, name):
        raise AppFileError(f"environment.{name}: not an environment variable name: {NAME_RULE}")
    if not isinstance(spec, dict):
        raise AppFileError(f"environment.{name}: expected an object with type/defval/required")
    unknown = sorted(set(spec) - ENV_KEYS)
    if unknown:
        warnings.append(f"environment.{name}: ignoring {', '.join(unknown)}")
    kind = str(spec.get("type", "string"))
    return EnvField(
        type=kind,
        description=localized(spec.get("description")),
        default=_text_value(f"environment.{name}.defval", spec.get("defval")),
        required=_flag(f"environment.{name}.required", spec.get("required", False)),
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
    executable = _text_field(raw, "executable").strip()
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
    which = "cmdparamsTemplate" if raw.get("cmdparamsTemplate") else "cmdparams"
    cmdparams = _text_field(raw, which)
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
        ociimage=_text_field(raw, "ociimage"),
        homepage=_text_field(raw, "homepage"),
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
