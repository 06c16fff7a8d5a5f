"""A process's /metrics endpoint: served, off at port 0, a taken port refused before the run."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from farm.metrics_http import check_ports_free, serve
from trigger_sim.config import MonitoringConfig
from trigger_sim.errors import TriggerSimError
from trigger_sim.metrics import ReadoutMetrics


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_endpoint_serves_the_registry_live_and_closes():
    metrics = ReadoutMetrics()
    port = free_port()
    endpoint = serve(metrics.registry, MonitoringConfig(base_port=port - 2), "readout")
    try:
        metrics.accepts.inc(3)
        text = urllib.request.urlopen(endpoint.url, timeout=2).read().decode()
        samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
        assert samples["trigger_sim_level1_accepts_total"] == 3
        assert not any(name.endswith("_created") for name in samples)
    finally:
        endpoint.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(endpoint.url, timeout=1)


def test_off_at_port_zero():
    assert serve(ReadoutMetrics().registry, MonitoringConfig(), "readout") is None


def test_a_taken_port_is_named_before_the_run_starts():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(TriggerSimError, match=f"port {port} for the builder"):
            check_ports_free(MonitoringConfig(base_port=port - 1), {"builder": port})


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="base_port"):
        MonitoringConfig(base_port=70000)
    with pytest.raises(ValueError, match="linger_s"):
        MonitoringConfig(linger_s=-1.0)
