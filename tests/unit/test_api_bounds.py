"""What the API's models take is what the store can do with it: ids within a Postgres
`bigint` (one past it used to reach the database and come back as "invalid input for
query argument $1 … out of int64 range"), and an artifact's checksum required with
its content (the schema said it defaulted to "", and every upload without it was
refused)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from contracts import api
from contracts import tenants as t
from contracts.base import INT8_MAX
from contracts.errors import describe
from store.artifacts import _content

PAST_INT8 = INT8_MAX + 1

ID_FIELDS: list[tuple[type[BaseModel], str, dict[str, Any]]] = [
    (api.TemplateRef, "id", {}),
    (api.TemplateUpdate, "id", {}),
    (api.RunNow, "id", {}),
    (api.JobQuery, "template_id", {}),
    (t.CredentialAssign, "template_id", {"name": "bank"}),
    (t.TokenRef, "id", {}),
]


def _maximum(model: type[BaseModel], field: str) -> int | None:
    """The largest value the model's JSON Schema allows for `field` (optional or not)."""
    schema = model.model_json_schema()["properties"][field]
    options = schema.get("anyOf", [schema])
    return next((option["maximum"] for option in options if "maximum" in option), None)


def _json(field: str, value: int, rest: dict[str, Any]) -> str:
    """The request as a client in another language sends it: a number JSON does not bound."""
    fields = [f'"{field}": {value}', *(f'"{key}": "{text}"' for key, text in rest.items())]
    return "{" + ", ".join(fields) + "}"


@pytest.mark.parametrize(("model", "field", "rest"), ID_FIELDS)
def test_ids_past_a_bigint_are_refused_by_the_model(
    model: type[BaseModel], field: str, rest: dict[str, Any]
) -> None:
    assert _maximum(model, field) == INT8_MAX
    assert getattr(model.model_validate_json(_json(field, INT8_MAX, rest)), field) == INT8_MAX
    for wrong in (PAST_INT8, 0, -1):
        with pytest.raises(ValidationError) as refused:
            model.model_validate_json(_json(field, wrong, rest))
        assert describe(refused.value).startswith(f"{field}: Input should be"), describe(refused.value)


def _upload(content: bytes | None, **fields: Any) -> t.ArtifactUpload:
    encoded = None if content is None else base64.b64encode(content).decode()
    values = {"job_id": "j1", "company": "acme", "attempt": 1, "name": "report", "content": encoded}
    return t.ArtifactUpload.model_validate(values | fields)


def test_an_artifact_with_content_needs_its_checksum() -> None:
    with pytest.raises(ValidationError) as refused:
        _upload(b"data", size=4)
    assert "`sha256` is required with `content`" in describe(refused.value)
    with pytest.raises(ValidationError):
        _upload(b"data", size=4, sha256="not-hex")
    schema = t.ArtifactUpload.model_json_schema()["properties"]["sha256"]
    assert "required with `content`" in schema["description"] and schema["pattern"] == "^([0-9a-f]{64})?$"
    assert _upload(None, size=4, over_limit=True).sha256 == ""
    assert _upload(None, size=0, missing=True).sha256 == ""
    digest = hashlib.sha256(b"data").hexdigest()
    assert _content(_upload(b"data", size=4, sha256=digest)) == b"data"


def test_a_mismatch_says_which_of_size_and_checksum_it_is() -> None:
    digest = hashlib.sha256(b"data").hexdigest()
    with pytest.raises(api.ApiFailure, match=r"4 bytes, not the `size` given \(5\)"):
        _content(_upload(b"data", size=5, sha256=digest))
    with pytest.raises(api.ApiFailure, match="does not match the `sha256` given"):
        _content(_upload(b"date", size=4, sha256=digest))
