"""Metrics settings: port (0 turns it off), host, company labels, cluster URLs."""

from __future__ import annotations

import pytest

from jetjobs.settings import SettingsError, load


def test_metrics_settings_from_environment() -> None:
    env = {"JETJOBS_METRICS_PORT": "0", "JETJOBS_METRICS_HOST": "0.0.0.0", "JETJOBS_COMPANY_LABELS": "true"}
    settings = load({}, env)
    assert (settings.metrics_port, settings.metrics_host, settings.company_labels) == (0, "0.0.0.0", True)
    assert load({}, {}).metrics_port is None


@pytest.mark.parametrize("port", ["-1", "65536", "http"])
def test_a_bad_metrics_port_is_one_clear_error(port: str) -> None:
    with pytest.raises(SettingsError, match=r"JETJOBS_METRICS_PORT=.* must be a port number from 0"):
        load({}, {"JETJOBS_METRICS_PORT": port})


def test_several_nats_urls_name_the_nodes_of_a_cluster() -> None:
    url = "nats://n1:4222,nats://n2:4222"
    assert load({}, {"JETJOBS_NATS_URL": url}).nats_url == url
    with pytest.raises(SettingsError, match="is not a valid URL"):
        load({}, {"JETJOBS_NATS_URL": "nats://n1:4222,n2"})
