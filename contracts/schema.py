"""JSON Schema export, so clients in any language can validate messages."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from .api import OPERATIONS
from .flows import FlowEvent, FlowSpec, FlowStart
from .lifecycle import RunnerInfo
from .messages import DeadLetter, JobEvent, JobMessage
from .models import ActiveTemplate, Application, Company, RunTemplate, TemplateSpec
from .output import LogChunk
from .records import JobRecord
from .schedule import SlotRecord

MESSAGES: dict[str, type[BaseModel]] = {
    "job-message": JobMessage,
    "job-event": JobEvent,
    "dead-letter": DeadLetter,
    "log-chunk": LogChunk,
    "active-template": ActiveTemplate,
    "application": Application,
    "company": Company,
    "template-spec": TemplateSpec,
    "run-template": RunTemplate,
    "job-record": JobRecord,
    "slot-record": SlotRecord,
    "flow-spec": FlowSpec,
    "flow-event": FlowEvent,
    "flow-start": FlowStart,
    "runner-info": RunnerInfo,
}


def schemas() -> dict[str, dict[str, object]]:
    """Every public model's JSON Schema by file stem, API requests and replies included."""
    out = {name: model.model_json_schema() for name, model in MESSAGES.items()}
    for op, spec in OPERATIONS.items():
        out[f"api.{op}.request"] = spec.request.model_json_schema()
        out[f"api.{op}.reply"] = spec.reply.model_json_schema()
    return out


def export(directory: Path) -> list[Path]:
    """Write one `<name>.schema.json` per model into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = directory / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
