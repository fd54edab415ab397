"""A real Prometheus (Debian's `prometheus` package) scrapes a running jetjobs
and answers a query about it; `promtool` accepts the alert rules."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import urllib.error
import urllib.parse
from pathlib import Path

import pytest

from jetjobs.embedded import free_port
from tests.observe import http_get, observed_stack
from tests.stack import eventually

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
MISSING = "needs Debian's `prometheus` package (apt-get install prometheus); .ci/run installs it"


@pytest.mark.skipif(PROMTOOL is None, reason=MISSING)
def test_promtool_accepts_the_alert_rules() -> None:
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


FAILING_CASES = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'jetjobs_store_job_outcomes_total{{status="processed",kind=""}}'
        values: '0+1x30'
      - series: 'jetjobs_store_job_outcomes_total{{status="error",kind="cancelled"}}'
        values: '0+5x30'
    alert_rule_test:
      - eval_time: 25m
        alertname: JetjobsJobsFailing
        exp_alerts: []
  - interval: 1m
    input_series:
      - series: 'jetjobs_store_job_outcomes_total{{status="processed",kind=""}}'
        values: '0+1x30'
      - series: 'jetjobs_store_job_outcomes_total{{status="error",kind="exit"}}'
        values: '0+1x30'
    alert_rule_test:
      - eval_time: 25m
        alertname: JetjobsJobsFailing
        exp_alerts:
          - exp_labels: {{severity: warning}}
            exp_annotations:
              summary: More than 20% of finished jobs failed in the last 15 minutes (cancelled ones aside)
              description: See `jetjobs status` for the last failures and `jetjobs job show ID` for their output.
"""
"""Cancels (a `replace` template's, say) are no failures; exits are."""


@pytest.mark.skipif(PROMTOOL is None, reason=MISSING)
def test_the_failing_jobs_alert_counts_exits_not_cancels(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    cases = tmp_path / "cases.yml"
    cases.write_text(FAILING_CASES.format(rules=DEPLOY / "prometheus" / "alerts.yml"))
    result = subprocess.run(
        [PROMTOOL, "test", "rules", str(cases)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _config(tmp_path: Path, target: str) -> Path:
    """The deploy scrape config's shape, pointed at this test's jetjobs, scraping every second."""
    config = tmp_path / "prometheus.yml"
    shutil.copy(DEPLOY / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "rule_files: [alerts.yml]\n"
        "scrape_configs:\n  - job_name: jetjobs-store\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    return config


async def _query(base: str, promql: str) -> list[dict[str, object]]:
    try:
        status, body = await http_get(f"{base}/api/v1/query?query={urllib.parse.quote(promql)}")
    except urllib.error.URLError:  # not listening yet
        return []
    if status != 200:
        return []
    result: list[dict[str, object]] = json.loads(body)["data"]["result"]
    return result


@pytest.mark.skipif(PROMETHEUS is None, reason=MISSING)
async def test_prometheus_scrapes_jetjobs_and_answers_a_query(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    assert PROMETHEUS is not None
    async with observed_stack(nats_url, database_url) as (stack, server):
        await stack.company("acme")
        app = await stack.app("-c 'echo hi'")
        template = await stack.template(name="t", app=app.app.uuid, company="acme")
        await stack.final_job((await stack.run(template.id)).job_id)

        port = free_port("127.0.0.1")
        prometheus = await asyncio.create_subprocess_exec(
            PROMETHEUS,
            f"--config.file={_config(tmp_path, f'127.0.0.1:{server.port}')}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            query = 'sum(jetjobs_executor_jobs_finished_total{status="processed"})'

            async def answered() -> list[dict[str, object]]:
                return await _query(base, query)

            result = await eventually(answered, timeout=60, what="Prometheus to scrape jetjobs")
            assert float(result[0]["value"][1]) == 1.0  # type: ignore[index]
            up = await _query(base, 'up{job="jetjobs-store"}')
            assert up and up[0]["value"][1] == "1"  # type: ignore[index]
        finally:
            prometheus.terminate()
            try:
                await asyncio.wait_for(prometheus.wait(), 20)
            except TimeoutError:
                prometheus.kill()
                await prometheus.wait()
