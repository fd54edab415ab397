"""Turning database rows into contract models (and back into parameters)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.enums import ErrorKind, Interval, Status
from contracts.lifecycle import DeadLetterRecord, DeadLetterSummary, ExitCodes
from contracts.models import Application, ArtifactSpec, Company, EnvField, RunTemplate, TemplateSpec, Timeouts
from contracts.records import AttemptRecord, JobRecord
from contracts.schedule import Misfire, Overlap

from .lifecycle import AttemptState

Row = Mapping[str, Any]


@dataclass(frozen=True)
class TemplateRow:
    """A stored template with what projecting or running it needs."""

    template: RunTemplate
    app: Application | None
    """None for a flow template."""
    company_enabled: bool
    updated_at: datetime
    app_updated_at: datetime | None
    company_paused: bool = False
    scheduled_since: datetime | None = None
    """When it was last put on the schedule (None: saved before this was kept)."""
    sealed: frozenset[str] = frozenset()
    """The secret fields whose values the template sets encrypted, outside its env."""

    @property
    def revision(self) -> str:
        """Changes whenever the template or its application is saved."""
        app_saved = 0.0 if self.app_updated_at is None else self.app_updated_at.timestamp()
        return f"{self.updated_at.timestamp():.6f}-{app_saved:.6f}"


def _json(value: str | None, default: Any) -> Any:
    return default if value is None else json.loads(value)


def company(row: Row) -> Company:
    return Company(
        id=row["id"], code=row["code"], name=row["name"], enabled=row["enabled"], paused=row["paused"]
    )


def application(row: Row, *, id_column: str = "id", name_column: str = "name") -> Application:
    environment = _json(row["environment"], {})
    return Application(
        id=row[id_column],
        uuid=str(row["uuid"]),
        name=row[name_column],
        description=row["description"],
        executable=row["executable"],
        cmdparams=row["cmdparams"],
        environment={k: EnvField.model_validate(v) for k, v in environment.items()},
        ociimage=row["ociimage"],
        homepage=row["homepage"],
        tags=list(row["tags"]),
        **_declared(row),
    )


_ABSENT = object()


def _declared(row: Row) -> dict[str, Any]:
    """The artifacts and exit codes an application declares, where the row has them."""
    artifacts = row.get("artifacts", _ABSENT)
    if artifacts is _ABSENT:
        return {}
    codes = row["exit_codes"]
    return {
        "artifacts": [ArtifactSpec.model_validate(a) for a in _json(artifacts, [])],
        "exit_codes": None if codes is None else ExitCodes.model_validate_json(codes),
    }


def templates(found: Sequence[Row]) -> list[TemplateRow]:
    """Template rows, each application among them read once: 10,000 templates of a few
    applications validated each one's application again."""
    apps: dict[tuple[Any, Any], Application] = {}
    return [template(row, apps) for row in found]


def template(row: Row, apps: dict[tuple[Any, Any], Application] | None = None) -> TemplateRow:
    run = RunTemplate(
        id=row["id"],
        app_id=row["app_id"],
        app=None if row["uuid"] is None else str(row["uuid"]),
        flow=row["flow"],
        name=row["name"],
        company=row["company"],
        interv=Interval(row["interv"]),
        cron=row["cron"],
        timezone=row["timezone"],
        env=_json(row["env"], {}),
        pool=row["pool"],
        timeouts=Timeouts(
            timeout=row["timeout"], timeout_ack=row["timeout_ack"], timeout_result=row["timeout_result"]
        ),
        retries=row["retries"],
        active=row["active"],
        overlap=Overlap(row["overlap"]),
        misfire=Misfire(row["misfire"]),
        catch_up_limit=row["catch_up_limit"],
        jitter=row["jitter"],
        paused=row["paused"],
        deleted_at=row["deleted_at"],
    )
    return TemplateRow(
        template=run,
        app=None if row["app_id"] is None else _template_app(row, apps),
        company_enabled=row["company_enabled"],
        updated_at=row["updated_at"],
        app_updated_at=row["app_updated_at"],
        company_paused=row["company_paused"],
        scheduled_since=row.get("scheduled_since"),
        sealed=frozenset(row.get("sealed_names") or ()),
    )


def _template_app(row: Row, apps: dict[tuple[Any, Any], Application] | None) -> Application:
    key = (row["app_id"], row["app_updated_at"])
    app = None if apps is None else apps.get(key)
    if app is None:
        app = application(row, id_column="app_id", name_column="app_name")
        if apps is not None:
            apps[key] = app
    return app


def template_params(spec: TemplateSpec, app_id: int | None, company_id: int) -> tuple[Any, ...]:
    """The spec as `insert_template` / `update_template` columns, name first."""
    limits = spec.timeouts
    return (
        spec.name,
        app_id,
        company_id,
        spec.interv.value,
        spec.cron,
        spec.timezone,
        json.dumps(spec.env),
        spec.pool,
        limits.timeout,
        limits.timeout_ack,
        limits.timeout_result,
        spec.retries,
        spec.active,
        spec.overlap.value,
        spec.misfire.value,
        spec.catch_up_limit,
        spec.jitter,
        spec.paused,
        spec.flow,
    )


_STATUSES = {status.value: status for status in Status}
_KINDS: dict[str | None, ErrorKind | None] = {None: None, **{kind.value: kind for kind in ErrorKind}}
"""Stored labels to enums, looked up in dicts (the enum constructors cost more per row)."""


def attempt_state(row: Row) -> AttemptState:
    """A `lock_jobs` row as the fold takes it."""
    return AttemptState(
        row["attempt"],
        _STATUSES[row["status"]],
        row["final"],
        _KINDS[row["kind"]],
        row["runner"],
        row["pid"],
        row["exit_code"],
        row["reason"],
        row["begin_at"],
        row["end_at"],
        row["stdout"],
        row["stderr"],
    )


def attempt_record(row: Row) -> AttemptRecord:
    return AttemptRecord(
        attempt=row["attempt"],
        status=_STATUSES[row["status"]],
        kind=_KINDS[row["kind"]],
        runner=row["runner"],
        pid=row["pid"],
        exit_code=row["exit_code"],
        reason=row["reason"],
        begin=row["begin_at"],
        end=row["end_at"],
        results=_json(row["results"], {}),
    )


def job_record(row: Row, attempts: list[AttemptRecord] | None = None) -> JobRecord:
    return JobRecord(
        id=row["id"],
        company=row["company"],
        pool=row["pool"],
        template_id=row["template_id"],
        app_id=row["app_id"],
        status=_STATUSES[row["status"]],
        kind=_KINDS[row["kind"]],
        attempt=row["attempt"],
        final=row["final"],
        argv=_json(row["argv"], []),
        scheduled_at=row["scheduled_at"],
        dispatched_at=row["dispatched_at"],
        begin=row["begin_at"],
        end=row["end_at"],
        exit_code=row["exit_code"],
        pid=row["pid"],
        runner=row["runner"],
        reason=row["reason"],
        stdout=row["stdout"],
        stderr=row["stderr"],
        launched_by=row["launched_by"],
        attempts=attempts or [],
    )


def dead_letter_summary(row: Any) -> DeadLetterSummary:
    """A `dead_letter` row with its id and replay mark, without its message."""
    return DeadLetterSummary(
        id=row["id"],
        company=row["company"],
        job_id=row["job_id"],
        reason=row["reason"],
        subject=row["subject"],
        at=row["at"],
        replayed_as=row["replayed_as"],
        size=row["size"],
    )


def dead_letter_record(row: Any) -> DeadLetterRecord:
    """A `dead_letter` row with its id, replay mark, message and headers."""
    return DeadLetterRecord(
        **dead_letter_summary(row).model_dump(),
        payload=row["payload"],
        headers=_json(row["headers"], {}),
    )
