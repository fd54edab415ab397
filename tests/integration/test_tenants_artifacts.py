"""Artifacts round-trip byte for byte, over-limit and missing files are
recorded; every fixture app imports, exports and re-imports in place."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from contracts import api
from contracts import tenants as t
from contracts.api import ApiFailure
from contracts.enums import Status
from contracts.multiflexi import parse_app
from store.credentials import new_key
from tests.fixtures import app_files

from .tenants_stack import keyring, tenant_stack

SCRIPT = (
    "mkdir -p out && printf 'a\\000b\\377c' > out/one.bin && seq 1 5000 > out/two.bin"
    " && seq 1 3 > report.csv && head -c 600000 /dev/zero > big.dat && echo done"
)
BINARY = b"a\x00b\xffc"
SEQ = "".join(f"{i}\n" for i in range(1, 5001)).encode()


async def test_artifacts_round_trip_and_limits(nats_url: str, database_url: str) -> None:
    async with tenant_stack(nats_url, database_url, keyring(new_key())) as stack:
        await stack.company("acme")
        document = {
            "name": "artifacts",
            "executable": "sh",
            "cmdparams": f'-c "{SCRIPT}"',
            "artifacts": [
                "out/*.bin",
                {"path": "report.csv", "name": "report", "type": "text/csv"},
                "big.dat",
                {"path": "never.txt", "name": "never"},
            ],
        }
        app = await stack.client.call("app.import", api.AppImport(document=document), api.AppImported)
        template = await stack.template(name="a", app=str(app.app.id), company="acme")
        job = await stack.final_job((await stack.run(template.id)).job_id)
        assert job.status is Status.PROCESSED, job.reason
        listed = await stack.client.call("artifact.list", api.JobRef(id=job.id), t.ArtifactList)
        by_name = {a.name: a for a in listed.artifacts}
        assert set(by_name) == {"out/one.bin", "out/two.bin", "report", "big.dat", "never"}
        never = by_name["never"]
        assert never.missing and not never.over_limit and never.size == 0 and never.path == "never.txt"
        assert "left no such file" in (never.note or "")
        got_never = await stack.client.call(
            "artifact.get", t.ArtifactRef(job_id=job.id, name="never"), t.ArtifactContent
        )
        assert got_never.content is None and got_never.info.missing
        assert not any(a.missing for name, a in by_name.items() if name != "never")
        assert by_name["report"].content_type == "text/csv"
        big = by_name["big.dat"]
        assert big.over_limit and big.size == 600000 and "per-artifact limit" in (big.note or "")
        for name, expected in (("out/one.bin", BINARY), ("out/two.bin", SEQ), ("report", b"1\n2\n3\n")):
            got = await stack.client.call(
                "artifact.get", t.ArtifactRef(job_id=job.id, name=name), t.ArtifactContent
            )
            assert got.content is not None and base64.b64decode(got.content) == expected
            assert got.info.sha256 == hashlib.sha256(expected).hexdigest()
        by_attempt = await stack.client.call(
            "artifact.get", t.ArtifactRef(job_id=job.id, name="report", attempt=1), t.ArtifactContent
        )
        assert by_attempt.content is not None and by_attempt.info.attempt == 1
        with pytest.raises(ApiFailure) as absent:
            await stack.client.call(
                "artifact.get", t.ArtifactRef(job_id=job.id, name="report", attempt=2), t.ArtifactContent
            )
        assert absent.value.code == 404 and "'report' from attempt 2" in absent.value.message
        contradictory = t.ArtifactUpload(
            job_id=job.id, company="acme", attempt=1, name="never", size=1, sha256="", missing=True
        )
        with pytest.raises(ApiFailure) as refused:
            await stack.client.call("artifact.put", contradictory, t.ArtifactInfo)
        assert refused.value.code == 400 and "marked missing" in refused.value.message


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "disk-report.multiflexi.app.json"


async def test_fixture_apps_import_export_and_update_in_place(nats_url: str, database_url: str) -> None:
    paths = [*app_files(), EXAMPLE]
    async with tenant_stack(nats_url, database_url, None) as stack:
        for path in paths:
            document = json.loads(path.read_text())
            first = await stack.client.call("app.import", api.AppImport(document=document), api.AppImported)
            exported = await stack.client.call("app.export", t.AppRef(id=first.app.uuid), t.AppDocument)
            again = await stack.client.call(
                "app.import", api.AppImport(document=exported.document), api.AppImported
            )
            assert not again.created and again.app.id == first.app.id
            assert exported.document == {**document, "uuid": first.app.uuid}  # as imported: nothing lost
            assert parse_app(exported.document)[0] == parse_app(document)[0]
            listed = await stack.client.call("app.list", api.CompanyFilter(), api.AppList)
            shown = next(app for app in listed.apps if app.uuid == first.app.uuid)
            assert (shown.artifacts, shown.exit_codes) == (again.app.artifacts, again.app.exit_codes)
