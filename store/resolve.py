"""Resolving what a user typed (a company code, an app id or uuid) to stored rows,
with the error that says how to fix a miss."""

from __future__ import annotations

import uuid

from pydantic import ValidationError

from contracts.api import ApiFailure, TemplateUpdate
from contracts.enums import Interval
from contracts.errors import describe
from contracts.models import Application, Company, RunTemplate, TemplateSpec

from .queries import Queries
from .rows import TemplateRow

_MAX_ID_DIGITS = 18  # anything longer cannot be a bigint id


def unknown_company(code: str) -> ApiFailure:
    return ApiFailure(404, f"unknown company '{code}': create it with `jetjobs company create {code}`")


def unknown_template(template_id: int) -> ApiFailure:
    return ApiFailure(404, f"unknown template {template_id}: see `jetjobs template list`")


def deleted_template(found: RunTemplate) -> ApiFailure:
    """The refusal of a run or change of a deleted template, saying where its history is."""
    assert found.deleted_at is not None
    return ApiFailure(
        409,
        f"template {found.id} ({found.name}) was deleted at {found.deleted_at:%Y-%m-%d %H:%M:%S %Z}: "
        "it cannot run or change; create a new template instead (its jobs stay: "
        f"`jetjobs job list --template {found.id}`)",
    )


async def company(queries: Queries, code: str) -> Company:
    found = await queries.company_by_code(code)
    if found is None:
        raise unknown_company(code)
    return found


async def company_id(queries: Queries, code: str | None) -> int | None:
    """The id of an optional company filter; a code that names no company is an error."""
    if code is None:
        return None
    found = await company(queries, code)
    assert found.id is not None
    return found.id


def _uuid(text: str) -> str | None:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


async def application(queries: Queries, ref: str) -> Application:
    """An application by numeric id or by uuid."""
    found = None
    if ref.isdigit() and len(ref) <= _MAX_ID_DIGITS:
        found = await queries.app_by_id(int(ref))
    elif (normal := _uuid(ref)) is not None:
        found = await queries.app_by_uuid(normal)
    if found is None:
        raise ApiFailure(404, f"unknown application '{ref}': import it with `jetjobs app import FILE`")
    return found


async def template(queries: Queries, template_id: int, *, deleted: bool = False) -> TemplateRow:
    """A template to run or change; a deleted one only to read (`deleted`)."""
    found = await queries.template(template_id)
    if found is None:
        raise unknown_template(template_id)
    if found.template.deleted_at is not None and not deleted:
        raise deleted_template(found.template)
    return found


async def template_filter(queries: Queries, template_id: int | None) -> str | None:
    """The company of an optional template filter, whose jobs the caller must be
    allowed to read; one that names no template is refused (a deleted one is fine:
    its jobs stay), as an unknown company filter is refused."""
    if template_id is None:
        return None
    found = await queries.template(template_id)
    if found is None:
        raise unknown_template(template_id)
    return found.template.company


def merged_spec(current: RunTemplate, update: TemplateUpdate) -> TemplateSpec:
    """The stored spec with the update applied and checked again (the caller holds
    the template's row lock, so env keys set by concurrent updates are all kept).

    `timeouts` may be given in part; moving away from interval `c` drops the cron;
    `set_env` and `unset_env` then change single keys of the resulting env."""
    base = current.model_dump(mode="json", include=set(TemplateSpec.model_fields))
    updates = dict(update.changes)
    if isinstance(updates.get("timeouts"), dict):
        updates["timeouts"] = {**base["timeouts"], **updates["timeouts"]}
    if "interv" in updates and "cron" not in updates and updates["interv"] != Interval.CUSTOM.value:
        updates["cron"] = None
    env = updates.get("env", base["env"])
    if (update.set_env or update.unset_env) and isinstance(env, dict):
        updates["env"] = {k: v for k, v in {**env, **update.set_env}.items() if k not in update.unset_env}
    try:
        return TemplateSpec.model_validate({**base, **updates})
    except ValidationError as error:
        raise ApiFailure(400, f"template.update: {describe(error)}") from None
