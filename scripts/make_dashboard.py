"""Write monitoring/grafana-dashboard.json: the farm's Grafana dashboard (panels and their
PromQL), kept as code so panels stay uniform; tests/monitoring checks every metric it names."""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "monitoring" / "grafana-dashboard.json"
R = "$__rate_interval"
BUSY = f'sum(rate(trigger_sim_level1_vetoed_total{{reason="busy"}}[{R}]))'

PANELS = [  # (title, unit, [(expr, legend)])
    ("Rates in and out", "reqps", [
        (f"sum(rate(trigger_sim_level1_accepts_total[{R}]))", "Level-1 accepts"),
        (f"sum by (outcome) (rate(trigger_sim_events_total[{R}]))", "decided: {{outcome}}"),
    ]),
    ("Total latency (Level-1 time to decision)", "s", [
        (f"histogram_quantile({q}, sum by (le) (rate(trigger_sim_event_latency_seconds_bucket[{R}])))", f"p{p}")
        for q, p in ((0.5, 50), (0.9, 90), (0.99, 99))
    ]),
    ("Latency per step, p50", "s", [
        (f"histogram_quantile(0.5, sum by (le, step) (rate(trigger_sim_step_duration_seconds_bucket[{R}])))", "{{step}}"),
    ]),
    ("Latency per step, p99", "s", [
        (f"histogram_quantile(0.99, sum by (le, step) (rate(trigger_sim_step_duration_seconds_bucket[{R}])))", "{{step}}"),
    ]),
    ("Fallback fraction (events)", "percentunit", [
        (f'sum(rate(trigger_sim_inference_path_events_total{{path="fallback"}}[{R}])) / sum(rate(trigger_sim_events_total[{R}]))',
         "fallback"),
        (f"sum by (reason) (rate(trigger_sim_fallback_events_total[{R}])) / ignoring(reason) group_left "
         f"sum(rate(trigger_sim_events_total[{R}]))", "{{reason}}"),
    ]),
    ("Dead time (Level-1 slots vetoed while the farm was busy)", "percentunit", [
        (f"{BUSY} / ({BUSY} + sum(rate(trigger_sim_level1_accepts_total[{R}])))", "dead time"),
        ("max(trigger_sim_level1_busy)", "Level-1 busy now"),
    ]),
    ("Inference requests per server and model", "reqps", [
        (f"sum by (server, model) (rate(trigger_sim_inference_calls_total[{R}]))", "{{server}} {{model}}"),
        (f"sum by (server, model) (rate(trigger_sim_inference_failures_total[{R}]))", "failed: {{server}} {{model}}"),
    ]),
    ("Events per model by path and server", "reqps", [
        (f"sum by (server, model, path) (rate(trigger_sim_model_events_total[{R}]))", "{{model}} {{path}} {{server}}"),
    ]),
    ("Triton: queue and compute time per request", "µs", [
        (f"sum by (model) (rate(nv_inference_queue_duration_us[{R}])) / sum by (model) (rate(nv_inference_request_success[{R}]))",
         "queue {{model}}"),
        (f"sum by (model) (rate(nv_inference_compute_infer_duration_us[{R}])) / "
         f"sum by (model) (rate(nv_inference_request_success[{R}]))", "compute {{model}}"),
    ]),
    ("Triton: requests per second", "reqps", [
        (f"sum by (model) (rate(nv_inference_request_success[{R}]))", "ok {{model}}"),
        (f"sum by (model) (rate(nv_inference_request_failure[{R}]))", "failed {{model}}"),
        (f"sum by (model) (rate(nv_inference_exec_count[{R}]))", "batches {{model}}"),
    ]),
    ("Event builder", "short", [
        ("sum(trigger_sim_builder_events_building)", "building"),
        ("sum(trigger_sim_builder_events_waiting)", "waiting for a worker"),
        ("sum by (worker) (trigger_sim_builder_events_in_flight)", "in flight {{worker}}"),
        ("sum(trigger_sim_builder_credits)", "free credits"),
    ]),
    ("Chains and streams", "reqps", [
        (f"sum by (chain) (rate(trigger_sim_chain_events_total[{R}]))", "{{chain}}"),
        (f"sum by (stream) (rate(trigger_sim_stream_events_total[{R}]))", "stream {{stream}}"),
        (f"sum by (stream) (rate(trigger_sim_debug_events_total[{R}]))", "debug {{stream}}"),
    ]),
    ("Faults", "short", [
        (f"sum by (kind) (increase(trigger_sim_builder_rejected_fragments_total[{R}]))", "rejected fragments: {{kind}}"),
        ("sum(trigger_sim_worker_restarts_total)", "worker restarts"),
        (f"sum(increase(trigger_sim_builder_retried_events_total[{R}]))", "events retried"),
        (f"sum by (kind) (increase(trigger_sim_worker_timeouts_total[{R}]))", "timeouts: {{kind}}"),
    ]),
]


def dashboard() -> dict:
    panels = []
    for i, (title, unit, targets) in enumerate(PANELS):
        panels.append({
            "id": i + 1, "title": title, "type": "timeseries", "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": chr(ord("A") + j), "expr": expr, "legendFormat": legend} for j, (expr, legend) in enumerate(targets)],
        })
    return {
        "title": "trigger-sim farm", "uid": "trigger-sim-farm", "schemaVersion": 39, "version": 1, "editable": True,
        "time": {"from": "now-15m", "to": "now"}, "refresh": "5s", "tags": ["trigger-sim"],
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}]},
        "panels": panels,
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(dashboard(), indent=2) + "\n")
    print(f"written: {OUT}")
