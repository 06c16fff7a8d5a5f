"""What farm is modelled: frozen dataclasses, loaded from TOML with unknown keys rejected.

Every mechanism of the real farm the model mirrors is a parameter here: the Level-1 pattern,
the readout buffer (a full buffer is Level-1 busy: dead time), workers and their event slots,
the pool of servers (instances, dynamic batching, kills and restarts), deadlines, the
circuit breaker, the local fallback's CPU cost, the soft and hard timeouts, and the network.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trigger_sim.assignment import credits_asked, node_slots, one_host_buffer_events
from trigger_sim.errors import ConfigError
from trigger_sim.planning.channels import client_backoff


@dataclass(frozen=True)
class ArrivalSpec:
    """Level-1 accepts offered to the farm."""

    rate_hz: float = 100.0
    pattern: str = "poisson"  # "constant", "poisson" or "burst"
    burst_factor: float = 10.0  # burst: rate inside a burst / mean rate
    burst_events: int = 50  # burst: events per burst
    seed: int = -1  # >= 0: the times the farm's readout schedules with run.seed = this (pairs a model run with a real one); -1: drawn with the plan's seed


@dataclass(frozen=True)
class ServerKill:
    """Server `server` (index in the pool) dies at `at_s` and is back `restart_s` later
    (a restart of a local server: its queued and running requests fail). With
    `after_decided` > 0 it dies once that many events are decided, not before `at_s` (as the
    farm's fault scenario kills: after its n-th decision). On a shared host (`host_cores`)
    the restarting server loads its models on the host's cores, one of two ways:
    `restart_processes` > 0: that many processes (its model instances' backends) share
    `restart_cpu_s` of CPU, each taking the cores as the scheduler gives them beside the farm,
    and the server is back when they are done, `restart_s` (its start on an idle host) at
    the soonest: a start on a loaded host takes longer, as the real ones do; else
    `restart_cpu_cores` of CPU on average over a restart of exactly `restart_s` (0: no CPU)."""

    server: int = 0
    at_s: float = 1.0
    restart_s: float = 1e9  # never, by default
    restart_cpu_cores: float = 0.0
    after_decided: int = 0  # > 0: not before this many events are decided
    restart_cpu_s: float = 0.0  # with restart_processes: the start's CPU (s), as measured (alone, or in loaded runs)
    restart_processes: int = 0  # > 0: the start's CPU taken by this many processes as the cores allow


@dataclass(frozen=True)
class FarmSpec:
    """The modelled farm. Times in ms unless named otherwise."""

    nodes: int = 1
    workers_per_node: int = 2  # worker processes per node (each one CPU core)
    slots_per_worker: int = 1  # events a worker holds at once (asynchronous inference)
    servers: int = 1  # inference servers in the pool (least-outstanding-requests balancing)
    server_kind: str = ""  # a key of the calibration's `servers` ("": its first)
    node_waiting_per_worker: int = 1  # events a node takes per worker beyond its slots (built, waiting at its builder)
    readout_buffer_events: int = 64  # accepts waiting in the readout for a node slot; full = Level-1 busy
    budget_ms: float = 500.0  # hard per-event budget (HltTimeout beyond it)
    soft_fraction: float = 0.8  # soft timeout at this fraction of the budget: the event leaves early
    timeout_ms: float = 100.0  # per-call inference deadline (capped by the soft timeout)
    breaker_failures: int = 3  # consecutive failures that open a server's breaker
    breaker_open_ms: float = 1000.0  # how long an open breaker skips its server before one probe
    # a worker's gRPC channel to a server that died tries to connect again after these
    # (gRPC's connection backoff, its defaults; `channels.Backoff`); 0: at once when it is up
    reconnect_backoff_ms: float = 1000.0
    reconnect_multiplier: float = 1.6
    reconnect_jitter: float = 0.2
    reconnect_max_backoff_ms: float = 120_000.0
    fallback_cpu_factor: float = 1.0  # local fallback CPU = this x the call's server demand on the calibration server
    network_rtt_ms: float = 0.0  # added round trip per inference call (beyond the calibration's own)
    network_gbps: float = 0.0  # link bandwidth per call's bytes; 0: not modelled
    host_cores: int = 0  # >0: workers, server CPU and farm overhead share this many cores (one host)
    cpu_slice_ms: float = 0.0  # >0: the host's cores time-sliced (as the OS scheduler) in slices of this length; 0: whole bursts
    cpu_fair: bool = False  # with cpu_slice_ms: each slice to the least-run user (CFS), not round robin
    kills: tuple[ServerKill, ...] = ()
    # an event's steps and calls longer after its worker idled, as the calibration measured
    # (`idle_slowdown`): per event from its rows' idle gaps (`idle_gap_ms`), per run from a
    # low-rate run's factor (host keys `low_rate_step_scale`...); each only where the calibration has it
    idle_slowdown: bool = True


@dataclass(frozen=True)
class PlanSpec:
    """One simulation: arrivals, farm and how many events."""

    arrivals: ArrivalSpec = field(default_factory=ArrivalSpec)
    farm: FarmSpec = field(default_factory=FarmSpec)
    events: int = 10_000
    seed: int = 1
    block_events: int = 1  # events drawn as runs of consecutive calibration rows (1: each on its own)


SECTIONS = {"arrivals": ArrivalSpec, "farm": FarmSpec}
PATTERNS = ("constant", "poisson", "burst")


def check(spec: PlanSpec) -> PlanSpec:
    """Reject values the model cannot run, naming the key and what to do."""
    a, f = spec.arrivals, spec.farm
    problems = []
    if not a.rate_hz > 0:
        problems.append("arrivals.rate_hz must be > 0")
    if a.pattern not in PATTERNS:
        problems.append(f"arrivals.pattern must be one of {', '.join(PATTERNS)}, not {a.pattern!r}")
    if a.pattern == "burst" and not (a.burst_factor > 1 and a.burst_events >= 1):
        problems.append("arrivals.burst_factor must be > 1 and burst_events >= 1")
    for name in ("nodes", "workers_per_node", "slots_per_worker", "servers"):
        if getattr(f, name) < 1:
            problems.append(f"farm.{name} must be >= 1")
    if f.node_waiting_per_worker < 0:
        problems.append("farm.node_waiting_per_worker must be >= 0")
    if f.readout_buffer_events < 1:
        problems.append("farm.readout_buffer_events must be >= 1")
    if not (f.budget_ms > 0 and 0 < f.soft_fraction <= 1 and f.timeout_ms > 0):
        problems.append("farm.budget_ms and farm.timeout_ms must be > 0, farm.soft_fraction in (0, 1]")
    if f.breaker_failures < 1 or not f.breaker_open_ms > 0:
        problems.append("farm.breaker_failures must be >= 1 and farm.breaker_open_ms > 0")
    if f.fallback_cpu_factor < 0 or f.network_rtt_ms < 0 or f.network_gbps < 0 or f.host_cores < 0 or f.cpu_slice_ms < 0:
        problems.append("farm.fallback_cpu_factor, network_rtt_ms, network_gbps, host_cores and cpu_slice_ms must be >= 0")
    if not (f.reconnect_backoff_ms >= 0 and f.reconnect_multiplier >= 1 and 0 <= f.reconnect_jitter < 1
            and f.reconnect_max_backoff_ms >= f.reconnect_backoff_ms):
        problems.append("farm.reconnect_backoff_ms must be >= 0, reconnect_multiplier >= 1, reconnect_jitter in [0, 1) "
                        "and reconnect_max_backoff_ms >= reconnect_backoff_ms")
    for k in f.kills:
        if not 0 <= k.server < f.servers:
            problems.append(f"farm.kills: server {k.server} is not in a pool of {f.servers}")
        if not (k.restart_cpu_cores >= 0 and k.restart_cpu_s >= 0 and k.restart_processes >= 0):
            problems.append("farm.kills: restart_cpu_cores, restart_cpu_s and restart_processes must be >= 0")
        if not isinstance(k.restart_processes, int) or isinstance(k.restart_processes, bool):
            problems.append("farm.kills: restart_processes must be a whole number")
        elif k.restart_processes > 0:
            if not (k.restart_cpu_s > 0 and math.isfinite(k.restart_cpu_s)):
                problems.append("farm.kills: restart_processes needs restart_cpu_s > 0 (the start's CPU they share)")
            if f.host_cores < 1:
                problems.append("farm.kills: restart_processes needs farm.host_cores (the cores the restart shares)")
            if k.restart_cpu_cores > 0:
                problems.append("farm.kills: restart_processes and restart_cpu_cores are two ways of the same CPU: give one")
            if k.restart_s >= 1e8:
                problems.append("farm.kills: restart_processes needs restart_s (a start alone, the soonest it is back)")
        if k.after_decided < 0:
            problems.append("farm.kills: after_decided must be >= 0 (0: the kill at at_s)")
    if spec.events < 1 or spec.block_events < 1:
        problems.append("events and block_events must be >= 1")
    if problems:
        raise ConfigError("; ".join(problems))
    return spec


def load_spec(path: str | Path) -> PlanSpec:
    """A PlanSpec from TOML: sections [arrivals] and [farm] ([[farm.kills]] tables), top-level
    `events` and `seed`. Unknown sections or keys are errors naming the file and key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the plan specification: {err}") from err
    return check(spec_from_dict(data, str(path)))


def spec_from_dict(data: dict[str, Any], where: str = "plan") -> PlanSpec:
    """A PlanSpec from plain data (as `load_spec` reads it)."""
    top = {"events", "seed", "block_events", *SECTIONS}
    unknown = set(data) - top
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(top))})")
    parts: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        section = dict(data.get(name, {}))
        if name == "farm" and "kills" in section:
            section["kills"] = tuple(_build(ServerKill, k, f"{where}: [[farm.kills]]") for k in section["kills"])
        parts[name] = _build(cls, section, f"{where}: [{name}]")
    return PlanSpec(events=int(data.get("events", 10_000)), seed=int(data.get("seed", 1)),
                    block_events=int(data.get("block_events", 1)), **parts)


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
    return cls(**values)


def from_farm_config(config: Any, workers: int, host_cores: int = 0) -> FarmSpec:
    """The FarmSpec mirroring a real farm configuration (`trigger_sim.config.FarmConfig`):
    its workers and their event slots (`worker.slots`: the events a worker works on at once),
    the node's slots, the readout's buffer, budget, deadline and breaker; one local server. `host_cores` > 0
    when farm and server share one machine (this host). The model has one per-call deadline:
    the farm's `timeout_ms`, or without one the longest of its per-model deadlines."""
    models = config.inference.models or ("edge_classifier", "jet_tagger")
    timeout_ms = max(1e3 * config.inference.deadline_s(m) for m in models)
    # the one-host readout holds the node's slots and the builder's queue: what is beyond the
    # slots waits for one (the model's readout buffer counts only those)
    slots = node_slots(config, workers)
    if config.readout.buffer_events <= slots:
        raise ConfigError(f"readout.buffer_events = {config.readout.buffer_events} is no more than the node's "
                          f"{slots} event slots: the readout, not the node, would bound the events in flight, "
                          "which the model does not mirror; raise readout.buffer_events or model the farm in a plan file")
    return FarmSpec(nodes=1, workers_per_node=workers, slots_per_worker=config.worker.slots, servers=1,
                    node_waiting_per_worker=credits_asked(config) + 1 - config.worker.slots,
                    readout_buffer_events=one_host_buffer_events(config, workers) - slots, budget_ms=config.worker.budget_ms,
                    timeout_ms=timeout_ms, breaker_failures=config.inference.breaker_failures,
                    breaker_open_ms=config.inference.breaker_open_ms, host_cores=host_cores,
                    **reconnect_keys(config.inference.reconnect_backoff_ms))


def reconnect_keys(backoff_ms: float) -> dict[str, float]:
    """The model's channel keys for the farm's `inference.reconnect_backoff_ms`
    (`channels.client_backoff`: gRPC's own for 0, else a fixed one of that length)."""
    b = client_backoff(backoff_ms)
    return {"reconnect_backoff_ms": b.initial_ms, "reconnect_multiplier": b.multiplier, "reconnect_jitter": b.jitter,
            "reconnect_max_backoff_ms": b.max_ms}
