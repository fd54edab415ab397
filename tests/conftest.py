"""Shared fixtures: real PostgreSQL and NATS servers for the whole suite.

By default the servers come from the `embedded` extra's wheels (no Docker):
one PostgreSQL per session with a fresh database per test, and a fresh NATS
per test. `JETJOBS_TEST_DATABASE_URL` / `JETJOBS_TEST_NATS_URL` switch to
existing servers instead. Every process started here is stopped at teardown,
even when the test failed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from jetjobs.embedded import NatsServer, PostgresServer
from tests.servers import ExternalNats, ExternalPostgres, shutdown

DATABASE_URL_ENV = "JETJOBS_TEST_DATABASE_URL"
NATS_URL_ENV = "JETJOBS_TEST_NATS_URL"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Tests sharing one NATS of your own (JETJOBS_TEST_NATS_URL) delete its jetjobs
    streams around each test, so they run in one process: the workers of `-n`
    would delete each other's streams mid-test."""
    if os.environ.get(NATS_URL_ENV) and getattr(config.option, "dist", "no") != "no":
        config.option.dist = "no"
        config.option.numprocesses = 0


def _stop_signals_as_from_a_terminal() -> None:
    """Tests send Ctrl-C and hang-ups to the commands they start, as a user's terminal
    would. A test run a script started in the background inherits SIGINT ignored (and,
    under nohup, SIGHUP), and so would every command it starts, which would then never
    stop: give them back their default dispositions, which those commands inherit."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


_stop_signals_as_from_a_terminal()


# Many tests each open a connection pool against the one session server.
PG_TEST_SETTINGS = {"max_connections": "200"}


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer | ExternalPostgres]:
    """One PostgreSQL for the session (external if JETJOBS_TEST_DATABASE_URL is set).

    Its data lives in a folder of its own rather than pytest's numbered temp
    dirs, which a concurrent pytest run may prune while this session runs."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        yield ExternalPostgres(url)
        return
    folder = Path(tempfile.mkdtemp(prefix="jetjobs-test-pg-"))
    server = PostgresServer.start(folder / "data", extra_settings=PG_TEST_SETTINGS)
    try:
        yield server
    finally:
        shutdown(server)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def database_url(pg_server: PostgresServer | ExternalPostgres) -> Iterator[str]:
    """DSN of a brand-new database `jj_<hex>`, force-dropped after the test."""
    name = f"jj_{secrets.token_hex(6)}"
    pg_server.create_database(name)
    try:
        yield pg_server.dsn(name)
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def nats_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[NatsServer | ExternalNats]:
    """A fresh NATS with JetStream per test, so every test starts without streams.

    If JETJOBS_TEST_NATS_URL is set, tests share that server instead; jetjobs'
    own streams (`JETJOBS_*`, `KV_jetjobs_*`) are then deleted before and
    after each test so state does not leak between tests.
    """
    url = os.environ.get(NATS_URL_ENV)
    if url:
        external = ExternalNats(url)
        external.reset()
        try:
            yield external
        finally:
            external.reset()
        return
    server = NatsServer.start(tmp_path_factory.mktemp("nats"))
    try:
        yield server
    finally:
        shutdown(server)


@pytest.fixture
def nats_url(nats_server: NatsServer | ExternalNats) -> str:
    """URL of this test's NATS server."""
    return nats_server.url


@pytest.fixture
def embedded_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """Always a private embedded NATS, for tests that kill or restart the server."""
    server = NatsServer.start(tmp_path_factory.mktemp("nats"))
    try:
        yield server
    finally:
        shutdown(server)


@pytest.fixture
def embedded_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """Always a private embedded PostgreSQL (own initdb), for kill/restart tests."""
    data_dir = tmp_path_factory.mktemp("postgres") / "data"
    server = PostgresServer.start(data_dir, extra_settings=PG_TEST_SETTINGS)
    try:
        yield server
    finally:
        shutdown(server)


@pytest.fixture
def tmp_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty directory to use as a jetjobs home / config dir."""
    return tmp_path_factory.mktemp("home")
