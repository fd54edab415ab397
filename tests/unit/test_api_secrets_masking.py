"""How a dead letter's message and a job's argv are shown: only the variables the
message names in `masked` are hidden, and only in a message that has them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from contracts.lifecycle import DeadLetterRecord
from contracts.messages import JobMessage
from store.masking import recorded_argv, shown_letter

NOW = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


def _letter(payload: str) -> DeadLetterRecord:
    return DeadLetterRecord(
        id=1, company="acme", reason="exit 1", subject="jetjobs.dispatch.acme.default", at=NOW,
        size=len(payload), payload=payload,
    )  # fmt: skip


def _message(env: dict[str, str], masked: list[str] | None, argv: list[str]) -> JobMessage:
    return JobMessage(
        job_id="job-1", company="acme", argv=argv, env=env, masked=masked, scheduled_at=NOW,
        dispatched_at=NOW, timeout=60, timeout_ack=30, timeout_result=60,
    )  # fmt: skip


def test_a_letter_hides_its_messages_secret_variables_and_keeps_the_rest() -> None:
    message = _message(
        {"PW": "hunter22", "PIN": "7", "USER": "bob"}, ["PW", "PIN"], ["sh", "-p", "x=hunter22"]
    )
    shown = json.loads(shown_letter(_letter(message.model_dump_json())).payload)
    assert shown["env"] == {"PW": "********", "PIN": "********", "USER": "bob"}
    assert shown["argv"] == ["sh", "-p", "x=********"], "a one-character value is not hunted in text"
    assert shown["job_id"] == "job-1" and shown["masked"] == ["PW", "PIN"]


def test_a_letter_without_secret_variables_is_shown_as_it_came() -> None:
    plain = _message({"PW": "hunter22"}, None, ["sh", "hunter22"]).model_dump_json()
    for payload in ("\ufffdnot json", "[" * 100_000, "[1, 2]", '{"env": "x"}', plain):
        letter = _letter(payload)
        assert shown_letter(letter) is letter, payload


def test_a_jobs_recorded_argv_hides_the_values_of_its_secret_variables() -> None:
    secret = _message({"PW": "hunter22", "USER": "bob"}, ["PW"], ["sh", "-c", "login bob hunter22"])
    assert recorded_argv(secret) == ["sh", "-c", "login bob ********"]
    plain = _message({"USER": "bob"}, None, ["sh", "bob"])
    assert recorded_argv(plain) is plain.argv
