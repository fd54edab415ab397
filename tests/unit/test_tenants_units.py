"""Tenancy logic without servers: encryption, masking, layering, placeholders,
app-file extras and artifact collection."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bus.connection import redacted
from contracts.dispatch import expand_argv, fill_secrets
from contracts.lifecycle import ExitCodes
from contracts.models import Application, ArtifactSpec, EnvField
from contracts.multiflexi import AppFileError, parse_app
from contracts.tenants import TokenInfo
from executor.artifacts import Limits, collect
from executor.containers import container_env, env_file_lines
from executor.output import Capture
from executor.secrets import Masker, MaskingSink, missing_required
from store.credentials import Keyring, SecretKeyError, UndecryptableError, new_key, parse_key
from store.layering import MASK, template_env
from store.tokens import TokenCache


def _ring(*keys: str) -> Keyring:
    return Keyring([parse_key(k, "k") for k in keys])


def test_sealed_values_open_only_with_their_key_company_and_name() -> None:
    old, new = new_key(), new_key()
    sealed = _ring(old).seal("acme", "abra", {"PW": "secret"})
    assert b"secret" not in sealed.ciphertext
    assert _ring(new, old).open("acme", "abra", sealed) == {"PW": "secret"}
    with pytest.raises(UndecryptableError, match="integrity"):
        _ring(old).open("globex", "abra", sealed)
    with pytest.raises(UndecryptableError, match="not configured"):
        _ring(new).open("acme", "abra", sealed)
    with pytest.raises(SecretKeyError, match="32 random bytes"):
        parse_key("short", "JETJOBS_SECRET_KEY")


def test_masking_whole_values_split_values_and_a_cut_tail() -> None:
    masker = Masker(["hunter22", "pw"])
    assert masker.mask(b"x hunter22 pw") == b"x ******** ********"
    capture = Capture(limit=6)
    capture.feed(b"abhunter22")
    shown = masker.capture(capture).text()
    assert "hunt" not in shown and shown.startswith("ab********")

    sent: list[bytes] = []

    async def sink(stream: str, data: bytes) -> None:
        sent.append(data)

    async def stream() -> None:
        masking = MaskingSink(sink, masker)
        for part in (b"start hun", b"ter22 end", b" hunt"):
            await masking("stdout", part)
        await masking.flush()

    asyncio.run(stream())
    assert b"".join(sent) == b"start ******** end hunt"


def test_a_one_character_value_and_an_uncut_tail_are_left_as_they_are() -> None:
    masker = Masker(["a", "hunter22"])
    capture = Capture(limit=100)
    capture.feed(b"a cat sat, then hun")
    assert masker.capture(capture).text() == "a cat sat, then hun"


def test_secret_placeholders_stay_until_the_executor_fills_them() -> None:
    argv = expand_argv("app", "--user={USER} --pw=${PW} {PW}", {"USER": "u"}, keep={"PW"})
    assert argv == ["app", "--user=u", "--pw=${PW}", "{PW}"]
    assert fill_secrets(argv, {"PW": "p w"}) == ["app", "--user=u", "--pw=p w", "p w"]
    assert missing_required(["A", "B"], {"A": "1", "B": ""}) == ["B"]


def test_template_env_shows_winning_layer_masked() -> None:
    app = Application(
        uuid="2a485658-4c14-49de-addd-901d131e669e",
        name="a",
        executable="x",
        environment={
            "URL": EnvField(default="https://demo"),
            "PW": EnvField(type="password", default="demo", secret=True, required=True),
            "MODE": EnvField(required=True),
            "LOGIN": EnvField(default="winstrom"),
        },
    )
    env = template_env(7, app, {"URL": "https://prod"}, {"LOGIN": "abra"})
    shown = {e.name: (e.value, e.source) for e in env.entries}
    assert shown == {
        "URL": ("https://prod", "template"),
        "PW": (MASK, "app default"),
        "MODE": (None, "unset"),
        "LOGIN": (MASK, "credential abra"),
    }
    assert env.missing == ["MODE"]


def test_template_env_leaves_out_a_stored_variable_jetjobs_sets() -> None:
    """An app or credential set stored before these names were refused still loads,
    and `template env` does not show its value as the job's."""
    app = Application(
        uuid="2a485658-4c14-49de-addd-901d131e669e",
        name="a",
        executable="x",
        environment={"JETJOBS_COMPANY": EnvField(default="spoofed"), "URL": EnvField(default="u")},
    )
    env = template_env(7, app, {}, {"JETJOBS_JOB_ID": "old"})
    assert [(e.name, e.value) for e in env.entries] == [("URL", "u")]


@pytest.mark.parametrize(
    "raw",
    [
        [{"code": 0, "meaning": "success"}, {"code": 3, "meaning": "retry"}, {"code": 2, "meaning": "error"}],
        {"0": "ok", "3": {"type": "transient"}, "2": "fatal"},
        {"success": [0], "retry": [3], "final": [2]},
    ],
)
def test_exit_codes_in_their_spellings(raw: object) -> None:
    app, _ = parse_app({"executable": "x", "uuid": "2a485658-4c14-49de-addd-901d131e669e", "exitCodes": raw})
    assert app.exit_codes == ExitCodes(success=[0], retry=[3], final=[2])


def test_bad_extras_name_the_field() -> None:
    with pytest.raises(AppFileError, match=r"artifacts\[0\]"):
        parse_app({"executable": "x", "artifacts": ["../etc/passwd"]})
    with pytest.raises(AppFileError, match="exitCodes"):
        parse_app({"executable": "x", "exitCodes": [{"code": "zero"}]})


def test_collect_respects_limits_and_stays_inside(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.txt").write_bytes(b"a" * 10)
    (tmp_path / "out" / "b.txt").write_bytes(b"b" * 10)
    (tmp_path / "big").write_bytes(b"x" * 50)
    (tmp_path / "out" / "link.txt").symlink_to("/etc/hostname")
    (tmp_path / "outside.log").symlink_to("/etc/hostname")
    specs = [
        ArtifactSpec(path="out/*.txt"),
        ArtifactSpec(path="big"),
        ArtifactSpec(path="missing", name="report", content_type="text/csv"),
        ArtifactSpec(path="*.log"),
    ]
    found = {c.name: c for c in collect(str(tmp_path), specs, Limits(per_artifact=20, per_job=15))}
    assert set(found) == {"out/a.txt", "out/b.txt", "out/link.txt", "big", "report", "outside.log"}
    gone = found["report"]  # declared, matched nothing inside
    assert gone.missing and gone.path == "missing" and gone.content is None and gone.size == 0
    assert "left no such file" in (gone.note or "")
    for link in ("out/link.txt", "outside.log"):  # matched, listed, never read
        assert (found[link].content, found[link].missing) == (None, False)
        assert found[link].note == "a symbolic link, not a regular file: not stored"
    assert found["report"].content_type == "text/csv"
    assert not any(found[name].missing for name in ("out/a.txt", "out/b.txt", "big"))
    assert found["out/a.txt"].content == b"a" * 10
    assert found["out/b.txt"].content is None
    assert found["out/b.txt"].note == (
        "10 bytes would pass the per-job limit of 15 bytes: the files stored before it leave 5 bytes; not stored"
    )
    assert found["big"].content is None and "per-artifact" in (found["big"].note or "")


def test_nats_passwords_never_reach_logs() -> None:
    assert redacted("nats://exec-acme:s3cret@h:4222") == "nats://exec-acme:***@h:4222"
    assert redacted("nats://a:x@h1:4222, nats://h2:4222") == "nats://a:***@h1:4222, nats://h2:4222"
    assert redacted("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"
    assert redacted("nats://s3cr3t-token@h:4222") == "nats://***@h:4222"
    assert redacted("tls://u:p@h:4222,nats://tok@h2") == "tls://u:***@h:4222,nats://***@h2"


def test_container_env_keeps_job_values_and_drops_host_paths() -> None:
    host = {"PATH": "/host/bin", "HOME": "/home/exec"}
    env = {"PATH": "/host/bin", "HOME": "/srv/job", "TZ": "UTC", "PEM": "a\nb", "K": "v=1"}
    assert container_env(env, host) == {"HOME": "/srv/job", "TZ": "UTC", "PEM": "a\nb", "K": "v=1"}
    text, inline = env_file_lines({"K": "v=1", "PEM": "a\nb"})
    assert text == "K=v=1\n" and inline == ["PEM"]


def test_token_cache_expires_and_forgets_revoked_tokens() -> None:
    now = datetime.now(UTC)
    info = TokenInfo(id=7, actor="alice", created_by="root", created_at=now)
    cache = TokenCache(seconds=60)
    cache.put(b"d", info)
    assert cache.get(b"d") == info and cache.get(b"other") is None
    cache.forget(7)
    assert cache.get(b"d") is None
    stale = TokenCache(seconds=-1)
    stale.put(b"d", info)
    assert stale.get(b"d") is None
