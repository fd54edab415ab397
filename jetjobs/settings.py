"""One frozen settings object, from flags, environment and an optional config file."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_HOME = Path(".jetjobs")
ENDPOINTS_FILE = "endpoints.json"


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
    before JetStream hands it to another (the pool consumer's AckWait)."""
    memory_limit_mb: int = 0
    """Executor resident memory ceiling; above it the executor drains and exits (0: none)."""
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
        """The NATS URL, or the one a running `jetjobs up` in `home` announced."""
        return self.nats_url or _announced(self.home, "nats_url") or "nats://127.0.0.1:4222"

    def require_database(self) -> str:
        """The PostgreSQL URL; services that need it cannot guess it."""
        url = self.database_url or _announced(self.home, "database_url")
        if not url:
            raise SettingsError(
                "no database configured: set JETJOBS_DATABASE_URL (postgresql://user@host:port/db) "
                "or pass --database-url"
            )
        return url


def _announced(home: Path, key: str) -> str | None:
    try:
        value = json.loads((home / ENDPOINTS_FILE).read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return str(value) if value else None


def _check_url(name: str, value: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise SettingsError(f"{name}={value!r} is not a valid URL: expected {schemes[0]}://host:port")
    try:
        _ = parts.port
    except ValueError:
        raise SettingsError(f"{name}={value!r} has an invalid port") from None
    return value


def _port(name: str, raw: Any) -> int:
    try:
        port = int(raw)
    except (TypeError, ValueError):
        port = -1
    if not 0 <= port <= 65535:
        raise SettingsError(f"{name}={raw!r} must be a port number from 0 (off) to 65535")
    return port


def _coerce(name: str, raw: Any, default: Any) -> Any:
    if name.endswith("_PORT"):
        return _port(name, raw)
    if isinstance(default, bool):
        return str(raw).lower() in ("1", "true", "yes", "on")
    if isinstance(default, float):
        return _positive_seconds(name, raw)
    if isinstance(default, int):
        try:
            number = int(raw)
        except (TypeError, ValueError):
            raise SettingsError(f"{name}={raw!r} must be a whole number") from None
        least = 0 if default == 0 else 1  # a setting whose default is 0 takes 0: off
        if number < least:
            raise SettingsError(f"{name}={raw!r} must be at least {least}")
        return number
    if isinstance(default, Path):
        return Path(str(raw))
    return str(raw)


def _positive_seconds(name: str, raw: Any) -> float:
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"{name}={raw!r} must be a number of seconds, e.g. 30") from None
    if not seconds > 0:
        raise SettingsError(f"{name}={raw!r} must be more than 0 seconds")
    return seconds


def _file_values(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise SettingsError(f"cannot read config file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"config file {path} is not valid TOML: {error}") from None


def load(flags: dict[str, Any], environ: dict[str, str] | None = None) -> Settings:
    """Settings with flags over environment over config file over defaults."""
    env = os.environ if environ is None else environ
    from_file = _file_values(flags.get("config") or env.get("JETJOBS_CONFIG"))
    unknown = sorted(set(from_file) - {f.name for f in fields(Settings)})
    if unknown:
        raise SettingsError(f"unknown setting(s) in config file: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for field in fields(Settings):
        raw = flags.get(field.name)
        if raw is None:
            raw = env.get(f"JETJOBS_{field.name.upper()}") or from_file.get(field.name)
        if raw is not None and raw != "":
            values[field.name] = _coerce(f"JETJOBS_{field.name.upper()}", raw, field.default)
    settings = Settings(**values)
    for nats_url in (settings.nats_url or "").split(","):
        if nats_url:  # several comma-separated URLs: the nodes of a cluster
            _check_url("JETJOBS_NATS_URL", nats_url.strip(), ("nats", "tls", "ws", "wss"))
    if settings.database_url:
        _check_url("JETJOBS_DATABASE_URL", settings.database_url, ("postgresql", "postgres"))
    if settings.log_level and settings.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise SettingsError(f"JETJOBS_LOG_LEVEL={settings.log_level!r}: use debug, info, warning or error")
    return settings
