"""Prometheus metrics of the farm's processes: every name, help text, label and bucket.

Defined here once, without sockets or processes, so they can be tested directly and the
dashboard's expressions checked against them; `farm/metrics_http.py` serves a process's
registry and the processes call the small update methods below. Each process has its own
`CollectorRegistry` (and its own endpoint, `process_ports`), so restarting a worker
restarts its counters, which Prometheus's `rate()` and `increase()` handle.

Names follow Prometheus's conventions: prefix `trigger_sim_`, base units (seconds, bytes),
`_total` for counters. Calls are labelled by `server` (the Triton URL) and `model`, so a
pool of servers fits without renaming anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from trigger_sim.worker_stats import per_server_models

PREFIX = "trigger_sim_"
SUPERVISOR, BUILDER, READOUT = "supervisor", "builder", "readout"
FIXED_ROLES = (SUPERVISOR, BUILDER, READOUT)  # ports base, base + 1, base + 2; worker i at base + 3 + i

# Latency buckets (seconds) for trigger budgets: a worker step takes 0.1-30 ms, an event
# 20-100 ms when the farm keeps up, and the budget (500 ms by default) and beyond when it
# does not; the configured budget is always a bucket edge, so "over budget" is exact.
BASE_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.35, 0.5, 0.75, 1.0, 2.5, 5.0,
                  10.0, 30.0)


# Triton's own metrics (tritonserver's /metrics, per model and version) that the shipped
# dashboard reads; the integration test checks a real server exports each of them.
TRITON_METRICS = ("nv_inference_request_success", "nv_inference_request_failure", "nv_inference_exec_count",
                  "nv_inference_queue_duration_us", "nv_inference_compute_infer_duration_us")


def latency_buckets_s(budget_ms: float) -> tuple[float, ...]:
    """The histogram buckets: `BASE_BUCKETS_S` with the event budget added as an edge."""
    return tuple(sorted(set(BASE_BUCKETS_S) | {round(budget_ms / 1e3, 6)}))


def worker_role(index: int) -> str:
    return f"worker-{index}"


def process_ports(base_port: int, n_workers: int) -> dict[str, int]:
    """Each process's metrics port: supervisor, builder, readout, then one per worker slot
    (a restarted worker takes its slot's port again). Empty when monitoring is off."""
    if base_port <= 0:
        return {}
    return {role: port_for(base_port, role) for role in (*FIXED_ROLES, *(worker_role(i) for i in range(n_workers)))}


def port_for(base_port: int, role: str) -> int:
    """The metrics port of `role` ("supervisor", "builder", "readout" or "worker-<i>",
    a worker's identity without its generation); 0 when monitoring is off."""
    if base_port <= 0:
        return 0
    if role in FIXED_ROLES:
        return base_port + FIXED_ROLES.index(role)
    prefix = worker_role(0)[:-1]
    if not role.startswith(prefix) or not role[len(prefix):].isdigit():
        raise ValueError(f"no metrics port for process {role!r}")
    return base_port + len(FIXED_ROLES) + int(role[len(prefix):])


class _Grower:
    """Feeds cumulative values (a process's own counters, read periodically) into
    Prometheus counters: each call adds what the value grew by since the last call."""

    def __init__(self) -> None:
        self._last: dict[tuple, float] = {}

    def set(self, counter: Counter, labels: tuple[str, ...], value: float) -> None:
        key = (id(counter), labels)
        grown = value - self._last.get(key, 0.0)
        if grown > 0:
            (counter.labels(*labels) if labels else counter).inc(grown)
            self._last[key] = value


class SupervisorMetrics:
    """What the collector sees (every outcome, so the figures agree with the summary) and
    the worker restarts the node agents report."""

    def __init__(self, budget_ms: float, server: str, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.server = server
        r, buckets = self.registry, latency_buckets_s(budget_ms)
        self.events = Counter(f"{PREFIX}events_total", "Level-1 accepts decided, by outcome (accepted, rejected, debug)",
                              ["outcome"], registry=r)
        self.chains = Counter(f"{PREFIX}chain_events_total", "Events passing each trigger chain", ["chain"], registry=r)
        self.streams = Counter(f"{PREFIX}stream_events_total", "Accepted events written to each output stream", ["stream"], registry=r)
        self.debug = Counter(f"{PREFIX}debug_events_total", "Events sent to a debug stream, by stream", ["stream"], registry=r)
        self.paths = Counter(f"{PREFIX}inference_path_events_total",
                             "Decided events by inference path (triton, fallback, expired, skipped, none)", ["path"], registry=r)
        self.fallbacks = Counter(f"{PREFIX}fallback_events_total", "Events with a local fallback, by the first reason", ["reason"], registry=r)
        self.model_events = Counter(f"{PREFIX}model_events_total", "Events per model by the path that answered it and the server called",
                                    ["server", "model", "path"], registry=r)
        self.steps = Histogram(f"{PREFIX}step_duration_seconds", "Time per step of an event (assign, build, queue, transfer, worker steps)",
                               ["step"], buckets=buckets, registry=r)
        self.latency = Histogram(f"{PREFIX}event_latency_seconds", "Level-1 time to decision, per decided event",
                                 buckets=buckets, registry=r)
        self.restarts = Counter(f"{PREFIX}worker_restarts_total", "Worker processes replaced after they died or stalled", registry=r)
        for outcome in ("accepted", "rejected", "debug"):
            self.events.labels(outcome)  # present at 0 from the start: rates work from the first scrape
        self._step_children: dict[str, Any] = {}

    def event_decided(self, outcome: str, chains: Iterable[str] = (), streams: Iterable[str] = (), debug_stream: str = "",
                      inference_path: str = "none", fallback_reason: str = "", model_paths: Mapping[str, str] | None = None,
                      steps_ms: Mapping[str, float] | None = None, servers: Mapping[str, str] | None = None) -> None:
        """One event the ledger counted. `servers`: the server per model where the result
        names one, else the farm's server."""
        self.events.labels(outcome).inc()
        for chain in chains:
            self.chains.labels(chain).inc()
        for stream in streams:
            self.streams.labels(stream).inc()
        if debug_stream:
            self.debug.labels(debug_stream).inc()
        self.paths.labels(inference_path or "none").inc()
        if fallback_reason:
            self.fallbacks.labels(fallback_reason).inc()
        for model, path in (model_paths or {}).items():
            self.model_events.labels((servers or {}).get(model, self.server), model, path).inc()
        for step, ms in (steps_ms or {}).items():
            if step == "total":
                self.latency.observe(ms / 1e3)
                continue
            child = self._step_children.get(step)
            if child is None:
                child = self._step_children[step] = self.steps.labels(step)
            child.observe(ms / 1e3)


class BuilderMetrics:
    """The event builder's queues and counters, set from its state periodically."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = r = registry or CollectorRegistry()
        self.fragments = Counter(f"{PREFIX}builder_fragments_total", "Fragments received from the readout", registry=r)
        self.bytes = Counter(f"{PREFIX}builder_received_bytes_total", "Bytes of fragments received", registry=r)
        self.rejected = Counter(f"{PREFIX}builder_rejected_fragments_total", "Fragments rejected, by kind", ["kind"], registry=r)
        self.dispatched = Counter(f"{PREFIX}builder_dispatched_events_total", "Events sent to workers (retries included)", registry=r)
        self.retried = Counter(f"{PREFIX}builder_retried_events_total", "Events retried after their worker was lost", registry=r)
        self.busy_seconds = Counter(f"{PREFIX}builder_busy_seconds_total", "Time the builder stopped reading the readout (queue full)",
                                    registry=r)
        self.building = Gauge(f"{PREFIX}builder_events_building", "Events with fragments still missing", registry=r)
        self.waiting = Gauge(f"{PREFIX}builder_events_waiting", "Complete events waiting for a worker", registry=r)
        self.in_flight = Gauge(f"{PREFIX}builder_events_in_flight", "Events a worker holds without a decision yet", ["worker"], registry=r)
        self.credits = Gauge(f"{PREFIX}builder_credits", "Free worker slots (credits) the builder holds", registry=r)
        self.busy = Gauge(f"{PREFIX}level1_busy", "1 while the builder's queue is full and the Level-1 is held busy", registry=r)
        self._grow = _Grower()
        self._workers: set[str] = set()

    def update(self, *, fragments: int, bytes_in: int, rejected: Mapping[str, int], dispatched: int, retried: int, busy_s: float,
               building: int, waiting: int, in_flight: Mapping[str, int], credits: int, busy: bool) -> None:
        g = self._grow
        g.set(self.fragments, (), fragments)
        g.set(self.bytes, (), bytes_in)
        for kind, n in rejected.items():
            g.set(self.rejected, (kind,), n)
        g.set(self.dispatched, (), dispatched)
        g.set(self.retried, (), retried)
        g.set(self.busy_seconds, (), busy_s)
        self.building.set(building)
        self.waiting.set(waiting)
        self.credits.set(credits)
        self.busy.set(1 if busy else 0)
        for worker in self._workers - set(in_flight):
            self.in_flight.remove(worker)  # a worker gone: its series ends
        for worker, n in in_flight.items():
            self.in_flight.labels(worker).set(n)
        self._workers = set(in_flight)


class ReadoutMetrics:
    """The Level-1: accepts, vetoes, and time blocked by back-pressure."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = r = registry or CollectorRegistry()
        self.accepts = Counter(f"{PREFIX}level1_accepts_total", "Level-1 accepts sent to the event builder", registry=r)
        self.vetoed = Counter(f"{PREFIX}level1_vetoed_total", "Level-1 slots vetoed: busy (farm back-pressure, dead time) or "
                              "readout_slow (the emulator could not keep up)", ["reason"], registry=r)
        self.blocked_seconds = Counter(f"{PREFIX}level1_blocked_seconds_total", "Time the readout's sends waited on the builder",
                                       registry=r)
        self.blocked = Gauge(f"{PREFIX}level1_blocked", "1 while a readout send waits on the builder", registry=r)
        for reason in ("busy", "readout_slow"):
            self.vetoed.labels(reason)


class WorkerMetrics:
    """A worker's events and inference calls per server and model, from the counters it
    already reports to the collector every second (`farm.worker.inference_counters`)."""

    def __init__(self, server: str, registry: CollectorRegistry | None = None):
        self.registry = r = registry or CollectorRegistry()
        self.server = server
        self.events = Counter(f"{PREFIX}worker_events_total", "Events this worker processed", registry=r)
        self.timeouts = Counter(f"{PREFIX}worker_timeouts_total", "Events past the soft or hard budget", ["kind"], registry=r)
        self.calls = Counter(f"{PREFIX}inference_calls_total", "Requests answered by the server", ["server", "model"], registry=r)
        self.failures = Counter(f"{PREFIX}inference_failures_total", "Requests that failed or missed their deadline",
                                ["server", "model"], registry=r)
        self.fallbacks = Counter(f"{PREFIX}inference_fallbacks_total", "Model runs in the worker instead (local fallback)",
                                 ["model"], registry=r)
        self.breaker_opened = Counter(f"{PREFIX}inference_breaker_opened_total", "Times the circuit breaker opened",
                                      ["server", "model"], registry=r)
        self._grow = _Grower()

    def update(self, counters: Mapping[str, Any]) -> None:
        """`counters`: the worker's STATS. Per-server counters come from the pool's `servers`
        where present, else everything is the farm's server."""
        g = self._grow
        g.set(self.events, (), counters.get("processed", 0))
        g.set(self.timeouts, ("soft",), counters.get("soft_timeouts", 0))
        g.set(self.timeouts, ("hard",), counters.get("hard_timeouts", 0))
        models = counters.get("models") or {}
        for server, by_model in per_server_models(counters, self.server).items():
            for model, c in by_model.items():
                g.set(self.calls, (server, model), c.get("triton_calls", 0))
                g.set(self.failures, (server, model), c.get("triton_failures", 0))
                g.set(self.breaker_opened, (server, model), c.get("breaker_opened", 0))
        for model, c in models.items():
            g.set(self.fallbacks, (model,), c.get("fallback_calls", 0))


def exported_names() -> set[str]:
    """Every sample name the farm's processes export (histograms as _bucket, _sum, _count):
    what a dashboard may query."""
    names: set[str] = set()
    for metrics in (SupervisorMetrics(500.0, ""), BuilderMetrics(), ReadoutMetrics(), WorkerMetrics("")):
        for family in metrics.registry.collect():
            if family.type == "histogram":
                names |= {f"{family.name}_bucket", f"{family.name}_sum", f"{family.name}_count"}
            elif family.type == "counter":
                names.add(f"{family.name}_total")
            else:
                names.add(family.name)
    return names
