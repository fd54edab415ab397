"""A run's values of its template's secret fields (a run-now's `--env`, a flow's env for
a template node), or of its application's for a flow node that runs one directly, kept
out of its job message.

Each is sealed with the store's keyring, bound to the job and the field, in `job_secret`,
committed before the message is published; the message names the field in `secrets`,
and `secrets.fetch` serves the value to that job alone, over the template's own and its
credentials' (a run's override wins, as it does in the env). The values stay as long as
the job does: a `dlq replay` runs it again and needs them; retention removes them with it,
and those of a run whose publish failed (its ack may be what was lost, so they are not
taken back) once they are older than its horizon."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from contracts.api import ApiFailure
from contracts.models import ActiveTemplate

from .credentials import Keyring, no_key
from .db import Db
from .template_secrets import without
from .tenant_queries import TenantQueries


def refused(values: Collection[str]) -> ApiFailure:
    """Why a store without a key does not run a job given the values of these secret fields."""
    names = sorted(values)
    fields = "field" if len(names) == 1 else "fields"
    return ApiFailure(503, no_key(f"the value of secret {fields} {', '.join(names)} of a run"))


def by_name(template: ActiveTemplate, names: Collection[str]) -> ActiveTemplate:
    """The template as a job whose run sealed `names` sees it: those travel by name,
    as its own sealed values do (the run's override, not its value, is fetched)."""
    return template.model_copy(
        update={"env": without(template.env, names), "secrets": sorted({*template.secrets, *names})}
    )


async def seal_for_job(
    conn: Db, keyring: Keyring, job_id: str, template: ActiveTemplate, values: Mapping[str, str]
) -> None:
    """Store `values` sealed for the job (a job already holding one, asked for again with
    the same run key, keeps the value it was first given)."""
    await _seal(conn, keyring, job_id, template.company, template.id, values)


async def seal_for_app_job(
    conn: Db, keyring: Keyring, job_id: str, company: str, values: Mapping[str, str]
) -> None:
    """Store `values` sealed for a job that runs an application directly (a flow's `app:`
    node): no template names it, so only a request naming none is served them."""
    await _seal(conn, keyring, job_id, company, None, values)


async def _seal(
    conn: Db, keyring: Keyring, job_id: str, company: str, template_id: int | None, values: Mapping[str, str]
) -> None:
    sealed = {name: keyring.seal_job_field(job_id, name, value) for name, value in values.items()}
    await TenantQueries(conn).put_job_secrets(job_id, company, template_id, sealed)
