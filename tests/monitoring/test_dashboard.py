"""The shipped Grafana dashboard and Prometheus configuration name only what exists.

Grafana is not installable here, so the dashboard is checked against the metric names: every
name in its expressions is one the farm's processes export (`trigger_sim.metrics`) or one of
Triton's (`TRITON_METRICS`, which the integration test finds on a real server).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from trigger_sim.config import MonitoringConfig
from trigger_sim.metrics import TRITON_METRICS, exported_names, process_ports

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
NAME = re.compile(r"\b((?:trigger_sim|nv)_[A-Za-z0-9_]+)\b")


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def test_every_metric_in_the_dashboard_is_exported():
    exprs = dashboard_exprs()
    used = {name for expr in exprs for name in NAME.findall(expr)}
    assert len(exprs) >= 20 and used
    unknown = used - exported_names() - set(TRITON_METRICS)
    assert not unknown, f"the dashboard queries metrics nobody exports: {sorted(unknown)}"


def test_dashboard_covers_what_operators_watch():
    text = "\n".join(dashboard_exprs())
    for needle in ("histogram_quantile(0.99", "trigger_sim_step_duration_seconds_bucket", "trigger_sim_event_latency_seconds_bucket",
                   'path="fallback"', 'reason="busy"', "trigger_sim_inference_calls_total", "nv_inference_queue_duration_us",
                   "nv_inference_compute_infer_duration_us", "by (server, model)"):
        assert needle in text, needle


def test_dashboard_file_is_what_the_script_writes():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_dashboard", MONITORING.parent / "scripts" / "make_dashboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert json.loads((MONITORING / "grafana-dashboard.json").read_text()) == module.dashboard()


def test_scrape_configuration_lists_every_process_of_the_default_base_port():
    text = (MONITORING / "prometheus.yml").read_text()  # no YAML parser needed: targets and their role, in order
    groups = re.findall(r"targets: \[([^\]]+)\]\s*labels: \{role: (\w+)\}", text)
    farm = {t.strip().strip('"'): role for targets, role in groups for t in targets.split(",")}
    default = MonitoringConfig(base_port=9400)  # the farm's two first local servers, where the config looks
    for i in range(2):
        assert farm.pop(f"127.0.0.1:{default.triton_metrics_port(i)}") == "triton"
    ports = process_ports(9400, 8)
    assert sorted(farm) == sorted(f"127.0.0.1:{p}" for p in ports.values())
    for role, port in ports.items():
        assert farm[f"127.0.0.1:{port}"] == (role if not role.startswith("worker") else "worker")
    assert "job_name: trigger_sim" in text and "job_name: triton" in text
