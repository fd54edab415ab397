"""Pure contract logic: status machine, app import, argv expansion, validation."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from contracts import schema
from contracts.api import RunNow, TemplateUpdate
from contracts.base import EARLIEST, LATEST, RESERVED_ENV
from contracts.dispatch import expand_argv, scheduled_job_id
from contracts.enums import Interval, Status
from contracts.errors import describe
from contracts.flows import FlowSpec
from contracts.messages import JobEvent, JobMessage
from contracts.models import MAX_TIMEOUT, MIN_TIMEOUT_ACK, ActiveTemplate, RunTemplate, TemplateSpec, Timeouts
from contracts.multiflexi import AppFileError, parse_app
from contracts.records import JobRecord
from contracts.schedule import SlotOutcome, SlotReason
from contracts.states import FINAL, TRANSITIONS, can_transition, predecessors
from store.flow_queries import stored_flow
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


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"executable": ["prog"]}, "executable: expected text, not a JSON array"),
        ({"cmdparams": ["-a", "-b"]}, "cmdparams: expected text, not a JSON array"),
        ({"executable": "pr\x00og"}, "executable: holds a NUL byte"),
        ({"environment": {"A": {"defval": "a\x00b"}}}, "environment.A.defval: holds a NUL byte"),
        (
            {"environment": {"A": {"defval": {"en": "x"}}}},
            "environment.A.defval: expected text, not a JSON object",
        ),
        ({"environment": {"1BAD": {}}}, "environment.1BAD: not an environment variable name"),
        ({"environment": {"A B": {}}}, "environment.A B: not an environment variable name"),
        ({"environment": {"A": {"required": "maybe"}}}, "environment.A.required: expected true or false"),
    ],
)
def test_an_app_file_with_values_jetjobs_would_store_wrongly_is_refused_naming_the_field(
    change: dict[str, object], said: str
) -> None:
    """Before, a list became its Python text, a NUL failed in PostgreSQL without naming
    the field, and a name no template can set was kept."""
    with pytest.raises(AppFileError, match=re.escape(said)):
        parse_app({"executable": "prog", "name": "x"} | change)


@pytest.mark.parametrize(
    ("given", "required"), [("false", False), ("True", True), (0, False), (1, True), ("", False)]
)
def test_required_written_as_text_or_a_number_means_what_it_says(given: object, required: bool) -> None:
    """`bool("false")` is True: an optional variable became required, and every run failed."""
    app, _ = parse_app({"executable": "prog", "environment": {"A": {"required": given}}})
    assert app.environment["A"].required is required


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


SPEC: dict[str, object] = {
    "name": "huge",
    "app": "3",
    "company": "acme",
    "interv": "c",
    "cron": "*/20 * * * * *",
}


def job(**fields: object) -> dict[str, object]:
    at = "2026-01-01T00:00:00Z"
    values = {"job_id": "j", "company": "acme", "argv": ["true"], "scheduled_at": at, "dispatched_at": at}
    return values | {"timeout": 60, "timeout_ack": 30, "timeout_result": 60} | fields


def refusal(model: type[BaseModel], data: object) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate_json(json.dumps(data)) if isinstance(data, dict) else model.model_validate(data)
    message = describe(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("timeouts", "expected"),
    [
        ({"timeout": 1e14}, "timeout 100000000000000 s is too long: give at most 315360000 s (ten years)"),
        ({"timeout_result": 315360001}, "timeout_result 315360001 s is too long"),
        ({"timeout_ack": 0.0001}, "timeout_ack 0.0001 s is too short: give at least 1 s"),
    ],
)
def test_new_templates_and_runs_refuse_timeouts_out_of_bounds(
    timeouts: dict[str, float], expected: str
) -> None:
    assert expected in refusal(TemplateSpec, SPEC | {"timeouts": timeouts})
    assert expected in refusal(RunNow, {"id": 2, "timeouts": timeouts})
    with pytest.raises(ValidationError) as caught:
        RunNow(id=2, timeouts=Timeouts(**timeouts))  # as the command line builds it
    assert expected in describe(caught.value)


def test_timeouts_at_their_bounds_are_accepted() -> None:
    limits = Timeouts(timeout=MAX_TIMEOUT, timeout_ack=MIN_TIMEOUT_ACK, timeout_result=MAX_TIMEOUT)
    assert TemplateSpec.model_validate(SPEC | {"timeouts": limits}).timeouts == limits
    assert JobMessage.model_validate(job(timeout=MAX_TIMEOUT, timeout_ack=1, timeout_result=MAX_TIMEOUT))


def test_a_template_stored_before_the_bounds_still_loads_and_lists() -> None:
    stored = RunTemplate.model_validate(
        SPEC | {"id": 1, "timeouts": Timeouts(timeout=1e14, timeout_ack=0.0001)}
    )
    assert RunTemplate.model_validate_json(stored.model_dump_json()) == stored
    board = ActiveTemplate(id=1, revision="r", name="huge", company="acme", pool="default", cron="* * * * *")
    projected = board.model_copy(update={"timeouts": stored.timeouts})
    assert ActiveTemplate.model_validate_json(projected.model_dump_json()).timeouts == stored.timeouts


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"timeout": 1e400}, "timeout: Input should be less than or equal to 315360000"),
        ({"timeout_result": 1e14}, "timeout_result: Input should be less than or equal to 315360000"),
        ({"timeout_ack": 0.0001}, "timeout_ack: Input should be greater than or equal to 1"),
        ({"attempt": 3_000_000_000}, "attempt: Input should be less than or equal to 1000000000"),
        ({"retries": 101}, "retries: Input should be less than or equal to 100"),
        ({"template_id": 2**63}, "template_id: Input should be less than or equal to 9223372036854775807"),
        (
            {"dispatched_at": "9999-12-31T23:00:00+00:00"},
            "dispatched_at: Input should be less than or equal to 9000-12-31T23:59:59.999999Z",
        ),
        (
            {"scheduled_at": "1969-12-31T23:59:59Z"},
            "scheduled_at: Input should be greater than or equal to 1970-01-01T00:00:00Z",
        ),
    ],
)
def test_job_messages_out_of_range_are_invalid(fields: dict[str, object], expected: str) -> None:
    assert expected in refusal(JobMessage, job(**fields))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"end": "9999-12-31T23:59:59-14:00"},
            "end: Input should be less than or equal to 9000-12-31T23:59:59.999999Z",
        ),
        ({"pid": 2**63}, "pid: Input should be less than or equal to 9223372036854775807"),
        ({"exit_code": -(2**63) - 1}, "exit_code: Input should be greater than or equal to"),
        ({"attempt": 2**31}, "attempt: Input should be less than or equal to 2147483647"),
        ({"retry_in": 1e400}, "retry_in: Input should be less than or equal to 315360000"),
    ],
)
def test_events_out_of_range_are_invalid(fields: dict[str, object], expected: str) -> None:
    event = {
        "job_id": "j",
        "company": "acme",
        "attempt": 1,
        "status": "processed",
        "at": "2026-01-01T00:00:00Z",
    }
    assert expected in refusal(JobEvent, event | fields)


def test_an_instant_out_of_range_says_the_allowed_range() -> None:
    message = refusal(JobMessage, job(dispatched_at="0001-01-01T00:00:00+14:00"))
    assert "dispatched_at: Input should be greater than or equal to 1970-01-01T00:00:00Z" in message


def test_the_latest_instant_plus_the_longest_timeout_is_still_a_date() -> None:
    message = JobMessage.model_validate(job(dispatched_at=LATEST, timeout=MAX_TIMEOUT))
    assert message.dispatched_at + timedelta(seconds=message.timeout) > LATEST
    assert JobMessage.model_validate(job(scheduled_at=EARLIEST)).scheduled_at == EARLIEST


def test_the_record_shows_any_instant_it_holds() -> None:
    stored = datetime(9999, 12, 31, tzinfo=UTC)
    record = JobRecord(id="j", company="acme", status=Status.PROCESSED, attempt=1, final=True, end=stored)
    assert JobRecord.model_validate_json(record.model_dump_json()).end == stored


def test_board_entries_keep_the_spec_bounds_on_jitter_and_retries() -> None:
    board = {"id": 1, "revision": "r", "name": "t", "company": "acme", "pool": "default", "cron": "* * * * *"}
    assert "jitter" in refusal(ActiveTemplate, board | {"jitter": 1e14})
    assert "retries" in refusal(ActiveTemplate, board | {"retries": 10**9})


def test_a_run_cannot_pass_for_a_flow_run() -> None:
    """`flow:` in `launched_by` marks a flow's jobs (a dead letter of one is not replayed alone)."""
    assert "reserved for the jobs of flow runs" in refusal(RunNow, {"id": 2, "launched_by": "flow:nightly"})
    assert RunNow(id=2, launched_by="cron-wrapper").launched_by == "cron-wrapper"


def test_a_bad_key_or_a_check_across_fields_reads_without_pydantic_places() -> None:
    with pytest.raises(ValidationError) as bad_key:
        RunNow(id=1, env={"1FOO": "x"})
    assert describe(bad_key.value).startswith("env: '1FOO' is not an environment variable name")
    with pytest.raises(ValidationError) as across:
        TemplateSpec(name="x", app="1", company="acme", interv="d", cron="0 3 * * *")
    assert describe(across.value) == "a cron expression needs interval 'c', not 'd'"


@pytest.mark.parametrize("name", sorted(RESERVED_ENV))
def test_a_variable_jetjobs_sets_for_every_job_cannot_be_given(name: str) -> None:
    spec = {"name": "x", "app": "1", "company": "acme"}
    nodes = [{"name": "a", "app": "1"}]
    given = [
        (TemplateSpec, {**spec, "env": {name: "forged"}}),
        (TemplateUpdate, {"id": 1, "set_env": {name: "forged"}}),
        (RunNow, {"id": 1, "env": {name: "forged"}}),
        (FlowSpec, {"name": "f", "company": "acme", "env_vars": {name: "forged"}, "nodes": nodes}),
        (FlowSpec, {"name": "f", "company": "acme", "nodes": [{**nodes[0], "env": {name: "forged"}}]}),
    ]
    for model, data in given:
        with pytest.raises(ValidationError) as caught:
            model.model_validate(data)
        assert f"{name} is set by jetjobs for every job and cannot be given" in describe(caught.value)
    assert RunNow(id=1, env={"JETJOBS_JOB": "mine", "JETJOBS_RESULT_A_B": "x"}).env["JETJOBS_JOB"] == "mine"
    stored = RunTemplate.model_validate({**spec, "id": 1, "env": {name: "forged"}})
    assert stored.env == {name: "forged"}, "a template saved before the check still loads, to be fixed"
    flow = json.dumps({"name": "f", "company": "acme", "env_vars": {name: "forged"}, "nodes": nodes})
    assert stored_flow(flow).env_vars == {name: "forged"}, "so does a flow saved before it"


def test_a_jitter_as_long_as_the_gap_between_slots_is_refused() -> None:
    fields = {"name": "x", "app": "1", "company": "acme", "interv": "c", "cron": "* * * * *"}
    with pytest.raises(ValidationError) as caught:
        TemplateSpec.model_validate(fields | {"jitter": 60})
    assert describe(caught.value) == (
        "jitter 60 s is not shorter than the 60 s between this schedule's slots: "
        "a slot would start after the next one is due; give less than 60 s"
    )
    assert TemplateSpec.model_validate(fields | {"jitter": 59.5}).jitter == 59.5
    assert TemplateSpec.model_validate(fields | {"interv": "n", "cron": None, "jitter": 600}).jitter == 600
    stored = {**fields, "id": 1, "jitter": 600}
    assert RunTemplate.model_validate(stored).jitter == 600, "a stored template loads as it was saved"
