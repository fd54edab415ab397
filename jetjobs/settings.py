"""One frozen settings object, from flags, environment and an optional config file."""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

DEFAULT_HOME = Path(".jetjobs")
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
"""Where client commands look for NATS when nothing says where it is."""
ENDPOINTS_FILE = "endpoints.json"
LOCK_FILE = "up.lock"
"""Held by the `jetjobs up` of a home for as long as it runs (`jetjobs.home`)."""


class SettingsError(Exception):
    """A configuration value is wrong; the message names it and the fix."""


def make_folder(path: Path, option: str) -> None:
    """Make the folder a user named with `option` (and its parents), or say why not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise SettingsError(f"{option} {path}: a file is in the way; give a folder") from None
    except OSError as error:
        raise SettingsError(f"{option} {path}: cannot make the folder: {error.strerror}") from None


@dataclass(frozen=True)
class Settings:
    """Everything a jetjobs process is configured with.

    Each field `x` is read from the flag `--x`, else `JETJOBS_X`, else the
    config file (`--config` / `JETJOBS_CONFIG`, TOML), else the default."""

    nats_url: str | None = None
    database_url: str | None = None
    home: Path = DEFAULT_HOME
    pool: str = "default"
    slots: int = 8
    log_level: str | None = None
    replicas: int = 1
    metrics_port: int | None = None
    """Port of /metrics, /healthz, /readyz; unset: the service's own default; 0: off."""
    metrics_host: str = "127.0.0.1"
    company_labels: bool = False
    """Label job metrics by company (one series per company: mind the cardinality)."""
    ack_wait: float = 30.0
    """Seconds an executor or store may hold a message without a sign of life
    before JetStream hands it to another (the consumers' AckWait), 1 to a day."""
    memory_limit_mb: int = 0
    """Executor resident memory ceiling; above it the executor drains and exits with status 75
    (0: none; else at least 16, and 32 MiB above the executor's size at start)."""
    secret_key: str | None = None
    """Store: base64 of a 32-byte key encrypting credentials (prefer secret_key_file)."""
    secret_key_file: str | None = None
    """Store: file of secret keys, one per line; the first encrypts, all decrypt."""
    actor: str | None = None
    """Who API calls are made as (default user:$USER for the CLI)."""
    runner: str = "process"
    """Executor: how jobs run: `process`, or `podman` / `docker` in the app's OCI image."""
    container_engine: str | None = None
    """Executor: path of the podman/docker binary (default: found on PATH)."""
    api_token: str | None = None
    """The token API calls are authenticated with (an admin issues it: `jetjobs actor token create`)."""
    require_tokens: bool = False
    """Store: refuse API calls without a valid token (leave off for one local operator)."""
    executor_actor: str = "executor"
    """Executor: who it is to the store API (a company lists it among its executors)."""
    executor_company: str | None = None
    """Executor: serve only this company's jobs, from its consumer `exec_<pool>__<company>`."""
    bind_only: bool = False
    """Executor: create no streams or consumers, only bind (a per-company NATS user)."""
    live_output_mb: int = 16
    """Executor: MiB of one attempt's output streamed live to `jetjobs.logs.…` (the
    logs stream every tenant shares); the outcome keeps the start of the output either way."""
    retention_days: int = 0
    """Store: days final history (jobs, flow runs, slots, dead letters) is kept (0: for ever)."""
    audit_retention_days: int = 0
    """Store: days the audit log is kept (0: for ever)."""

    def require_nats(self) -> str:
        """The NATS URL, or the one a running `jetjobs up` in `home` announced; with
        neither, NATS's own default port, unless a home of its own was named or an
        `up` gone from `home` left its URLs there: a command meant for the `up` there
        must not reach whatever else listens on 4222, nor wait on a port none serves."""
        url = self.nats_url or _announced(self.home, "nats_url")
        if url:
            return url
        if self._up_expected:
            raise SettingsError(f"{self.no_up_running()}, or give --nats-url (JETJOBS_NATS_URL)")
        return DEFAULT_NATS_URL

    def require_database(self) -> str:
        """The PostgreSQL URL; services that need it cannot guess it."""
        url = self.database_url or _announced(self.home, "database_url")
        if url:
            return url
        if self._up_expected:
            raise SettingsError(f"{self.no_up_running()}, or set JETJOBS_DATABASE_URL (or --database-url)")
        raise SettingsError(
            "no database configured: set JETJOBS_DATABASE_URL (postgresql://user@host:port/db) "
            "or pass --database-url"
        )

    @property
    def _up_expected(self) -> bool:
        """Whether only the `up` of `home` will do: a home of its own was named, or
        an `up` announced itself there (one killed outright leaves that behind)."""
        return self.home_named or (self.home / ENDPOINTS_FILE).exists()

    @property
    def home_named(self) -> bool:
        """Whether `home` is another folder than the default `./.jetjobs`."""
        return self.home.resolve() != DEFAULT_HOME.resolve()

    def no_up_running(self) -> str:
        """What a command that needs the `jetjobs up` of `home` says when none runs there."""
        home = shlex.quote(str(self.home))
        return f"no jetjobs up is running for home {self.home.resolve()}: start it with `jetjobs up --home {home}`"


def _announced(home: Path, key: str) -> str | None:
    """The URL the `up` running in `home` announced; none from one that is gone."""
    try:
        value = json.loads((home / ENDPOINTS_FILE).read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return str(value) if value and not _up_gone(home) else None


def _up_gone(home: Path) -> bool:
    """Whether the `up` that announced itself in `home` is gone: no process holds its
    lock, which the kernel drops however `up` ends (SIGKILL too). The lock is only
    tried shared and let go at once (`lock_home` gives an `up` starting meanwhile a
    moment); without a lock file, the announcement is trusted."""
    try:
        lock = (home / LOCK_FILE).open("rb")
    except OSError:
        return False
    with lock:  # closing it lets go of the lock
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return False
        return True


FLAGS_SPELLED_OTHERWISE = {"executor_company": "--company"}
"""Settings whose flag is not `--` and the field's name with dashes (`jetjobs executor --company`)."""


def flag_of(name: str) -> str:
    """The command-line flag of setting `name`, as errors about its value name it."""
    return FLAGS_SPELLED_OTHERWISE.get(name, "--" + name.replace("_", "-"))


TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")

DAY = 86400.0
SECONDS_RANGES: dict[str, tuple[float, float]] = {"ack_wait": (1.0, DAY)}
"""The seconds each float setting takes. `ack_wait`: executors and stores renew a
message every third of it, so under a second they would do little else; and the
jobs of an executor that vanished wait that long for another, which past a day no
operator wants (NATS itself would take up to 292 years)."""

SMALLEST_LIMIT = {"memory_limit_mb": 16}
"""Whole-number settings where 0 means no limit and a limit has a floor (an executor
needs more than 16 MiB to run at all; at start it also refuses a memory limit too
near what it already uses, which only it can measure)."""

LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class Source:
    """Where a setting's value came from, so an error about it points there."""

    name: str
    """The flag (`--replicas`), the variable (`JETJOBS_REPLICAS`) or the config file key (`replicas`)."""
    kind: Literal["flag", "variable", "key"]
    config_file: str | None = None

    def show(self, value: Any) -> str:
        """`value` as the user wrote it there."""
        if self.kind == "flag":
            return f"{self.name} {shlex.quote(str(value))}"
        if self.kind == "key":
            return f"{self.name} = {_toml(value)} in config file {self.config_file}"
        return f"{self.name}={value!r}"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | list):
        return json.dumps(value, default=str)  # a TOML string or array as written
    return repr(value)


def _check_url(source: Source, value: str, schemes: tuple[str, ...]) -> None:
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unclosed IPv6 bracket: nats://[::1
        parts = urlsplit("")
    if parts.scheme not in schemes or not parts.hostname:
        raise SettingsError(f"{source.show(value)} is not a valid URL: expected {schemes[0]}://host:port")
    try:
        _ = parts.port
    except ValueError:
        raise SettingsError(f"{source.show(value)} has an invalid port") from None


def _check_text(name: str, source: Source, value: str) -> None:
    """The settings whose text has a form: URLs and the log level."""
    if name == "nats_url":
        for nats_url in value.split(","):
            if nats_url:  # several comma-separated URLs: the nodes of a cluster
                _check_url(source, nats_url.strip(), ("nats", "tls", "ws", "wss"))
    elif name == "database_url":
        _check_url(source, value, ("postgresql", "postgres"))
    elif name == "log_level" and value.lower() not in LOG_LEVELS:
        raise SettingsError(f"{source.show(value)}: use debug, info, warning or error")


def is_utf8(text: str) -> bool:
    """Whether `text` can be sent: bytes that are not UTF-8 in an argument or variable
    reach Python as lone surrogates, which no JSON request or header can carry."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


FILE_SETTINGS = frozenset({"secret_key_file", "container_engine"})
"""Text settings naming a file, whose name may be any bytes the file system takes."""

TOML_TYPES = {bool: "a boolean", int: "an integer", float: "a float", list: "an array", dict: "a table"}


def _text(name: str, raw: Any, source: Source) -> str:
    """A text setting's value: a config file's key must hold a string, not a value
    turned into text (`home = ["x"]` would name a folder `['x']`); and text that is
    not UTF-8 is refused (not shown: it may be a token)."""
    if not isinstance(raw, str):
        given = TOML_TYPES.get(type(raw), f"a {type(raw).__name__}")
        raise SettingsError(f"{source.show(raw)}: give a string in quotes, not {given}")
    if name not in FILE_SETTINGS and not is_utf8(raw):
        raise SettingsError(f"{source.name}: the value is not valid UTF-8 text; give it as UTF-8")
    return raw


def _port(said: str, raw: Any) -> int:
    try:
        port = int(str(raw))
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise SettingsError(f"{said} must be a port number from 0 (off) to 65535")
    return port


def _bool(said: str, raw: Any) -> bool:
    """True or false in any usual spelling; anything else is refused, since a typo
    read as false would silently turn off what was meant to be on (token checks)."""
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise SettingsError(f"{said} is not true or false: write true or false (or yes/no, on/off, 1/0)")


def _seconds(said: str, raw: Any, least: float, most: float) -> float:
    try:
        seconds = float(str(raw))  # str: a TOML `true` is not 1 second
    except ValueError:
        raise SettingsError(f"{said} must be a number of seconds, e.g. 30") from None
    if not least <= seconds <= most:  # also refuses nan and inf
        raise SettingsError(f"{said} must be from {least:g} to {most:g} seconds")
    return seconds


def _whole(said: str, raw: Any, least: int, floor: int | None) -> int:
    try:
        number = int(str(raw))  # str: a TOML 2.5 or `true` is no whole number
    except ValueError:
        raise SettingsError(f"{said} must be a whole number") from None
    if number < least:
        raise SettingsError(f"{said} must be at least {least}")
    if floor is not None and 0 < number < floor:
        raise SettingsError(f"{said} must be 0 (no limit) or at least {floor}")
    return number


def _coerce(name: str, raw: Any, default: Any, source: Source) -> Any:
    said = source.show(raw)
    if name.endswith("_port"):
        return _port(said, raw)
    if isinstance(default, bool):
        return _bool(said, raw)
    if isinstance(default, float):
        return _seconds(said, raw, *SECONDS_RANGES[name])
    if isinstance(default, int):
        least = 0 if default == 0 else 1  # a setting whose default is 0 takes 0: off
        return _whole(said, raw, least, SMALLEST_LIMIT.get(name))
    text = _text(name, raw, source)
    if isinstance(default, Path):
        return Path(text)
    _check_text(name, source, text)
    return text


def _file_values(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        with open(path, "rb") as handle:
            values = tomllib.load(handle)
    except OSError as error:
        raise SettingsError(f"cannot read config file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"config file {path} is not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise SettingsError(
            f"config file {path} is not UTF-8 text: give a TOML file saved as UTF-8"
        ) from None
    unknown = sorted(set(values) - {f.name for f in fields(Settings)})
    if unknown:
        raise SettingsError(f"unknown setting(s) in config file {path}: {', '.join(unknown)}")
    return values


def _given(
    name: str, flags: dict[str, Any], env: Mapping[str, str], path: str | None, from_file: dict[str, Any]
) -> tuple[Any, Source] | None:
    """The raw value of setting `name` that wins, and where it came from (None: not set)."""
    if flags.get(name) is not None:
        return flags[name], Source(flag_of(name), "flag")
    variable = f"JETJOBS_{name.upper()}"
    if env.get(variable):
        return env[variable], Source(variable, "variable")
    if name in from_file:
        return from_file[name], Source(name, "key", path)
    return None


def load(flags: dict[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Settings with flags over environment over config file over defaults."""
    env = os.environ if environ is None else environ
    path = flags.get("config") or env.get("JETJOBS_CONFIG")
    from_file = _file_values(path)
    values: dict[str, Any] = {}
    for field in fields(Settings):
        given = _given(field.name, flags, env, path, from_file)
        if given is not None and given[0] != "":
            raw, source = given
            values[field.name] = _coerce(field.name, raw, field.default, source)
    return Settings(**values)
