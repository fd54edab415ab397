"""The files in deploy/ work together, proven without a container engine.

deploy/compose.yaml is rehearsed as local processes: its three NATS nodes from
deploy/nats/cluster/*.conf and its jetjobs services with their own commands and
environment (compose hostnames mapped to loopback ports): R3 streams, a leading
scheduler, both executors registered, jobs run and recorded. The systemd units
verify, and every variable the deploy files set is one jetjobs reads."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import yaml

from bus import ApiClient, Bus, Layout
from bus.overview import live_runners, scheduler_leader
from contracts import subjects as s
from contracts.api import ApiFailure
from executor import ExecutorConfig
from jetjobs import settings
from jetjobs.embedded import NatsServer, free_port
from jetjobs.observe.serve import EXECUTOR_PORT, SCHEDULER_PORT, STORE_PORT
from tests.servers import shutdown
from tests.stack import Stack, eventually

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DEFAULT_PORTS = {"store": STORE_PORT, "scheduler": SCHEDULER_PORT, "executor": EXECUTOR_PORT}


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())  # type: ignore[no-any-return]


def jetjobs_services() -> dict[str, dict[str, Any]]:
    return {n: svc for n, svc in compose()["services"].items() if svc.get("image") == "jetjobs:local"}


def node_config(name: str, route_ports: dict[str, int], folder: Path) -> Path:
    """The node's config with compose hostnames swapped for loopback ports."""
    text = (DEPLOY / "nats" / "cluster" / f"{name}.conf").read_text()
    text = text.replace("  store_dir: /data/jetstream\n", "")  # given on the command line
    text = text.replace("listen: 0.0.0.0:6222", f"listen: 127.0.0.1:{route_ports[name]}")
    for other, port in route_ports.items():
        text = text.replace(f"nats-route://{other}:6222", f"nats-route://127.0.0.1:{port}")
    assert not re.search(r"nats-\d:", text), f"a compose hostname is left in {name}.conf"
    path = folder / f"{name}.conf"
    path.write_text(text)
    return path


@contextlib.contextmanager
def nats_cluster(folder: Path) -> Iterator[dict[str, NatsServer]]:
    names = sorted(n for n, svc in compose()["services"].items() if str(svc.get("image")).startswith("nats"))
    assert names == ["nats-1", "nats-2", "nats-3"]
    client_ports = {n: free_port() for n in names}
    route_ports = {n: free_port() for n in names}
    servers: dict[str, NatsServer] = {}
    try:
        for name in names:
            config = node_config(name, route_ports, folder)
            servers[name] = NatsServer.start(folder / name, port=client_ports[name], config_file=config)
        yield servers
    finally:
        for server in servers.values():
            shutdown(server)


def local_env(env: dict[str, str], servers: dict[str, NatsServer], database_url: str) -> dict[str, str]:
    """A service's compose environment with hostnames pointing at the local servers."""
    local = {k: str(v) for k, v in env.items()}
    for name, server in servers.items():
        local = {k: v.replace(f"nats://{name}:4222", server.url) for k, v in local.items()}
    if "JETJOBS_DATABASE_URL" in local:
        local["JETJOBS_DATABASE_URL"] = database_url
    local["JETJOBS_METRICS_HOST"] = "127.0.0.1"
    local["JETJOBS_METRICS_PORT"] = str(free_port())
    base = {k: v for k, v in os.environ.items() if not k.startswith("JETJOBS_")}
    return base | local


@contextlib.asynccontextmanager
async def services(
    servers: dict[str, NatsServer], database_url: str
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Every jetjobs service of the compose file, store first (it provisions)."""
    ordered = sorted(jetjobs_services().items(), key=lambda item: item[1]["command"] != ["store"])
    started: list[asyncio.subprocess.Process] = []
    try:
        for _, svc in ordered:
            env = local_env(svc["environment"], servers, database_url)
            quiet = asyncio.subprocess.DEVNULL
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "jetjobs", *svc["command"], env=env, stdout=quiet, stderr=quiet
            )
            started.append(process)
            if svc["command"] == ["store"]:
                await _api_ready(servers["nats-1"].url)
        yield started
    finally:
        for process in started:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _api_ready(url: str) -> None:
    async def answers() -> bool:
        nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
        try:
            await nc.request(f"$SRV.PING.{s.API_SERVICE}", b"", timeout=1)
            return True
        except Exception:
            return False
        finally:
            await nc.close()

    await eventually(answers, timeout=60, what="the store's API on the cluster")


def test_prometheus_scrapes_each_compose_service_on_its_default_port() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    expected = {
        f"{name}:{DEFAULT_PORTS[svc['command'][0]]}"
        for name, svc in jetjobs_services().items()
        if "JETJOBS_METRICS_PORT" not in svc["environment"]
    }
    assert targets == expected


async def test_the_compose_topology_runs_jobs_on_r3_streams(tmp_path: Path, database_url: str) -> None:
    with nats_cluster(tmp_path) as servers:
        async with services(servers, database_url) as processes:
            nc = await nats.connect(servers["nats-2"].url)
            try:
                js = nc.jetstream()
                info = await js.stream_info(s.DISPATCH_STREAM)
                assert info.config.num_replicas == 3
                await eventually(lambda: _leading(js), timeout=30, what="a scheduler to lead")
                await eventually(lambda: _runners(js, 2), timeout=30, what="both executors to register")
                bus = await Bus.attach(servers["nats-3"].url, "rehearsal")
                stack = Stack(servers["nats-3"].url, database_url, ApiClient(bus.nc), bus, [])
                try:
                    await stack.company("acme")
                    app = await stack.app("-c 'echo from the cluster'")
                    template = await stack.template(name="t", app=app.app.uuid, company="acme")
                    jobs = [(await stack.run(template.id)).job_id for _ in range(6)]
                    for job_id in jobs:
                        await eventually(lambda j=job_id: _processed(stack, j), timeout=60, what=job_id)
                finally:
                    await bus.nc.close()
            finally:
                await nc.close()
            assert all(p.returncode is None for p in processes), "a service exited early"


async def _leading(js: Any) -> bool:
    return await scheduler_leader(js) is not None


async def _runners(js: Any, count: int) -> bool:
    return len(await live_runners(js)) >= count


async def _processed(stack: Stack, job_id: str) -> bool:
    try:
        return (await stack.job(job_id)).status.value == "processed"
    except ApiFailure:
        return False


def test_compose_stops_wait_out_the_executors_drain() -> None:
    """Docker's default stop (10 s, then SIGKILL) would cut a draining executor short
    and fail its running jobs; without an init, orphaned job processes are never reaped."""
    config = ExecutorConfig(nats_url="nats://nats-1:4222")
    needed = config.drain_timeout + config.grace + 10
    for name, service in jetjobs_services().items():
        assert service.get("init") is True, name
        grace = re.fullmatch(r"(\d+)s", str(service.get("stop_grace_period")))
        assert grace is not None and int(grace[1]) >= needed, (name, service.get("stop_grace_period"))


def test_the_executor_unit_lets_it_drain_its_jobs() -> None:
    """systemd's default stop signals every process of the unit, jobs included, which
    then fail instead of being drained or handed back."""
    unit = (DEPLOY / "systemd" / "jetjobs-executor.service").read_text()
    settings_of = dict(re.findall(r"^(\w+)=(.*)$", unit, re.MULTILINE))
    config = ExecutorConfig(nats_url="nats://localhost:4222")
    assert settings_of["KillMode"] == "mixed"
    assert int(settings_of["TimeoutStopSec"]) >= config.drain_timeout + config.grace + 10


def test_every_deploy_variable_is_a_setting_jetjobs_reads() -> None:
    known = {f"JETJOBS_{f.name.upper()}" for f in dataclasses.fields(settings.Settings)}
    env_file = DEPLOY / "systemd" / "jetjobs.env"
    in_env_file = {
        line.split("=")[0] for line in env_file.read_text().splitlines() if re.match(r"^\w+=", line)
    }
    in_compose = {k for svc in jetjobs_services().values() for k in svc["environment"]}
    assert in_env_file | in_compose <= known


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_units_verify(tmp_path: Path) -> None:
    """The units as installed (program and env file at their real paths here) have no errors."""
    program = Path(sys.executable).with_name("jetjobs")
    for unit in (DEPLOY / "systemd").glob("*.service"):
        text = unit.read_text().replace("/opt/jetjobs/.venv/bin/jetjobs", str(program))
        text = text.replace("/etc/jetjobs/jetjobs.env", str(DEPLOY / "systemd" / "jetjobs.env"))
        (tmp_path / unit.name).write_text(text)
    units = sorted(str(p) for p in tmp_path.glob("*.service"))
    assert len(units) == 3
    checked = subprocess.run(
        ["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60
    )
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


async def test_a_service_started_with_a_new_cluster_provisions_once_it_is_ready(tmp_path: Path) -> None:
    with nats_cluster(tmp_path) as servers:
        bus = await Bus.open(servers["nats-2"].url, "jetjobs-test", Layout(replicas=3))
        try:
            info = await bus.js.stream_info(s.EVENTS_STREAM)
            assert info.config.num_replicas == 3
        finally:
            await bus.close()
