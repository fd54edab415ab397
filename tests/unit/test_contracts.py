"""Pure contract logic: status machine, app import, argv expansion, validation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from contracts import schema
from contracts.dispatch import expand_argv, scheduled_job_id
from contracts.enums import Interval, Status
from contracts.errors import describe
from contracts.messages import JobMessage
from contracts.models import TemplateSpec
from contracts.multiflexi import AppFileError, parse_app
from contracts.schedule import SlotOutcome, SlotReason
from contracts.states import FINAL, TRANSITIONS, can_transition, predecessors
from tests.fixtures import app_files, load_app


def test_every_status_has_transitions_and_finals_are_terminal() -> None:
    assert set(TRANSITIONS) == set(Status)
    for final in FINAL:
        assert TRANSITIONS[final] == frozenset()


def test_no_transition_moves_backwards() -> None:
    order = list(Status)
    for current, targets in TRANSITIONS.items():
        for target in targets:
            assert order.index(target) > order.index(current)
    assert not can_transition(Status.PROCESSED, Status.STARTED)
    assert Status.STARTED in predecessors(Status.PROCESSED)


def test_real_multiflexi_files_import() -> None:
    for path in app_files():
        app, _ = parse_app(json.loads(path.read_text()))
        assert app.executable and app.uuid and app.name


def test_old_format_fields_are_understood() -> None:
    app, warnings = parse_app(load_app("cs_statement_downloader"))
    assert app.name == "ČSas statement downloader"
    assert app.tags == ["Csas", "Statements", "Downloader"]
    assert app.environment["CSAS_SANDBOX_MODE"].default == "false"
    assert app.environment["STATEMENT_FORMAT"].type == "select"
    assert app.environment["ACCOUNT_NUMBER"].required
    assert any("deploy" in w for w in warnings)


def test_v3_localized_fields_and_secrets() -> None:
    app, _ = parse_app(load_app("price_fixer"))
    assert app.name == "Price Fixer"
    assert app.description == "Bundle product price updater for AbraFlexi"
    assert app.environment["ABRAFLEXI_PASSWORD"].secret
    assert not app.environment["ABRAFLEXI_LOGIN"].secret
    assert app.ociimage == "docker.io/vitexsoftware/abraflexi-pricefixer"


def test_file_without_executable_is_refused_clearly() -> None:
    document = load_app("price_fixer")
    del document["executable"]
    with pytest.raises(AppFileError, match="executable: missing"):
        parse_app(document)


def test_unknown_fields_warn_instead_of_failing() -> None:
    app, warnings = parse_app({"executable": "true", "name": "x", "colour": "blue"})
    assert app.executable == "true"
    assert any("colour" in w for w in warnings)
    assert any("uuid" in w for w in warnings)


def test_what_jetjobs_keeps_but_does_not_use_is_said() -> None:
    _, downloader = parse_app(load_app("cs_statement_downloader"))
    _, fixer = parse_app(load_app("price_fixer"))
    assert "environment: options of STATEMENT_FORMAT kept but not used by jetjobs" in downloader
    assert any(w.startswith("environment: hint of CSAS_ACCOUNT_IBAN") for w in downloader)
    assert any(w.startswith("environment: category of ABRAFLEXI_COMPANY") for w in fixer)


def test_a_command_line_with_unbalanced_quotes_is_refused_at_import() -> None:
    with pytest.raises(AppFileError, match="cannot be split into words \\(no closing quotation\\): balance"):
        parse_app({"executable": "sh", "cmdparams": "-c 'echo {A}"})


def test_a_placeholder_the_app_does_not_declare_is_said() -> None:
    document = {"executable": "prog", "cmdparams": "{A} ${B} {A}", "environment": {"A": {"type": "string"}}}
    _, warnings = parse_app(document)
    assert any(w.startswith("cmdparams: B not declared in environment") for w in warnings)


def test_argv_expansion_never_needs_a_shell() -> None:
    env = {"DIR": "/tmp/a b", "FMT": "pdf", "EMPTY": ""}
    argv = expand_argv("prog", "-d ${DIR} --format={FMT} '$(rm -rf /)' {EMPTY}", env)
    assert argv == ["prog", "-d", "/tmp/a b", "--format=pdf", "$(rm -rf /)"]


def test_scheduled_job_id_is_deterministic_across_zones() -> None:
    slot = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    same_instant = slot.astimezone(timezone(timedelta(hours=2)))
    assert scheduled_job_id(7, slot) == scheduled_job_id(7, same_instant)
    assert scheduled_job_id(7, slot) != scheduled_job_id(8, slot)
    assert scheduled_job_id(7, slot) != scheduled_job_id(7, slot + timedelta(seconds=1))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"interv": "c", "cron": "61 * * * *"}, "invalid cron expression"),
        ({"interv": "q"}, "interv"),
        ({"interv": "c"}, "needs a cron expression"),
        ({"interv": "d", "cron": "* * * * *"}, "needs interval 'c'"),
        ({"interv": "d", "timezone": "Mars/Olympus"}, "unknown timezone"),
        ({"interv": "d", "company": "ACME Corp"}, "company"),
    ],
)
def test_template_spec_rejects_bad_input_with_a_clear_line(values: dict[str, str], expected: str) -> None:
    base = {"name": "t", "app": "1", "company": "acme"}
    with pytest.raises(ValidationError) as caught:
        TemplateSpec.model_validate(base | values)
    message = describe(caught.value)
    assert expected in message
    assert "\n" not in message


def test_cron_with_seconds_is_accepted() -> None:
    spec = TemplateSpec(name="t", app="1", company="acme", interv=Interval.CUSTOM, cron="*/5 * * * * *")
    assert spec.cron == "*/5 * * * * *"


def test_job_message_requires_aware_timestamps() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        JobMessage(
            job_id="j",
            company="acme",
            argv=["true"],
            scheduled_at=datetime(2026, 1, 1),
            dispatched_at=datetime(2026, 1, 1, tzinfo=UTC),
            timeout=1,
            timeout_ack=1,
            timeout_result=1,
        )


def test_schema_export_writes_one_valid_schema_per_model(tmp_path: Path) -> None:
    written = schema.export(tmp_path)
    names = {p.name for p in written}
    assert "job-message.schema.json" in names
    assert "job-event.schema.json" in names
    assert "api.template.run.request.schema.json" in names
    event = json.loads((tmp_path / "job-event.schema.json").read_text())
    assert set(event["$defs"]["Status"]["enum"]) == {s.value for s in Status}


def test_schema_export_covers_the_slot_records_on_the_slots_subject(tmp_path: Path) -> None:
    schema.export(tmp_path)
    slot = json.loads((tmp_path / "slot-record.schema.json").read_text())
    assert {"template_id", "company", "slot", "outcome", "recorded_at"} <= set(slot["required"])
    assert set(slot["$defs"]["SlotOutcome"]["enum"]) == {o.value for o in SlotOutcome}
    assert set(slot["$defs"]["SlotReason"]["enum"]) == {r.value for r in SlotReason}
