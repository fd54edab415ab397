"""Preparing a job's command: what a job without secrets gets is what it asked for,
and the values of fields declared secret are masked whichever layer set them."""

from __future__ import annotations

from typing import Any

from contracts.dispatch import job_message
from contracts.messages import JobMessage
from contracts.models import ActiveTemplate
from executor.secrets import Masker, Prepared, Refused, SecretSource
from tests.unit.jobs import NOW
from tests.unit.jobs import message as base_message


def message(**fields: Any) -> JobMessage:
    return base_message(**({"argv": ["echo", "{{ secret.PW }}", "$X"]} | fields))


async def test_a_job_without_secrets_runs_its_argv_and_env_unmasked() -> None:
    env = {"X": "1"}
    prepared = await SecretSource(None).prepare(message(), env)
    assert isinstance(prepared, Prepared)
    assert prepared.argv == ["echo", "{{ secret.PW }}", "$X"] and prepared.env == env
    assert prepared.env is not env and not prepared.masker
    assert prepared.masker.mask(b"anything") == b"anything"


async def test_required_variables_are_checked_without_secrets_too() -> None:
    prepared = await SecretSource(None).prepare(message(required=["MODE"]), {"MODE": ""})
    assert isinstance(prepared, Refused) and "MODE" in prepared.reason
    assert isinstance(await SecretSource(None).prepare(message(required=["MODE"]), {"MODE": "x"}), Prepared)


async def test_values_of_fields_declared_secret_are_masked_whoever_set_them() -> None:
    env = {"PASSWORD": "tmpl-pw-777", "TOKEN": "", "X": "1"}
    prepared = await SecretSource(None).prepare(message(masked=["PASSWORD", "TOKEN", "GONE"]), env)
    assert isinstance(prepared, Prepared) and prepared.env == env
    assert prepared.masker.mask(b"pw=tmpl-pw-777 x=1") == b"pw=******** x=1"
    assert prepared.masker.longest == len("tmpl-pw-777")  # the empty TOKEN masks nothing


def test_the_job_message_names_the_secret_fields_set_in_its_env_but_not_credentials() -> None:
    template = ActiveTemplate(
        id=1,
        revision="r",
        name="t",
        company="acme",
        pool="default",
        executable="sh",
        cmdparams="-c 'echo {PASSWORD}'",
        env={"PASSWORD": "tmpl-pw-777"},
        cron="* * * * *",
        secrets=["API_KEY"],
        masked=["API_KEY", "PASSWORD", "PIN"],
    )
    built = job_message(template, job_id="j1", slot=NOW, now=NOW)
    assert built.masked == ["PASSWORD"] and built.secrets == ["API_KEY"]
    overridden = job_message(template, job_id="j2", slot=NOW, now=NOW, env_overrides={"PIN": "1234"})
    assert overridden.masked == ["PASSWORD", "PIN"]
    assert (
        job_message(template.model_copy(update={"masked": None}), job_id="j3", slot=NOW, now=NOW).masked
        is None
    )


def test_results_are_masked_in_keys_and_values_even_with_lone_surrogates() -> None:
    """A results file is JSON, whose escapes can make text that is not UTF-8."""
    masker = Masker(["hunter2"])
    results = {"token": "x-hunter2-y", "hunter2": "k", "odd": "\ud800hunter2"}
    assert masker.results(results) == {"token": "x-********-y", "********": "k", "odd": "\ud800********"}
    assert Masker([]).results(results) is results
