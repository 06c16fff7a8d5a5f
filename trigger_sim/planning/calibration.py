"""A calibration: what the model samples and the server curves it uses, with provenance.

A calibration file is JSON (`FORMAT`, `VERSION`). It holds
- `events`: per-event columns measured in a real run (one row per decided event, rows kept
  together so a heavy event is heavy in every step): the worker's CPU steps (ms), the
  assignment round trip (`assign`: from a free node slot to the first fragment at the node;
  optional, 0 when absent), build (first fragment to complete) and transfer times, each model's demand on the calibration's own server (the call's time minus
  the round trip, ms), its input size and whether it was called, the outcome, and how long
  its worker had been idle before it (`idle_gap_ms`; optional);
- `servers`: service-time curves per server kind and model (`ModelCurve`);
- `host`: the shared host's cores and the farm's own CPU per event (readout, builder,
  collector), for modelling a farm that shares one machine with its server;
- `provenance`: where every number came from.
A file may hold only `servers` (a server calibration, e.g. a GPU's) and is then merged into an
events calibration (`merge`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from trigger_sim.errors import ConfigError

FORMAT = "trigger-sim-calibration"
VERSION = 1
CPU_STEPS = ("decode", "unpack", "calo", "graph", "tracks", "jet_features", "menu")
MODELS = ("edge_classifier", "jet_tagger")
# where each model's call sits in the sequence: CPU steps before it (the rest run after the last)
STEPS_BEFORE = {"edge_classifier": ("decode", "unpack", "calo", "graph"), "jet_tagger": ("tracks", "jet_features")}
AFTER_LAST = ("menu",)
OUTCOMES = ("accepted", "rejected")


@dataclass(frozen=True)
class ModelCurve:
    """Service time of one model on one server kind.

    A batch of b requests with input sizes u_i takes fixed_ms + per_request_ms * b +
    per_unit_ms * sum(u_i). With `empirical`, each request instead brings its own demand
    measured on the calibration's server, and a batch takes sum(demand_i) - (b - 1) *
    fixed_ms (batching saves the fixed cost per execution). `cpu_share`: the share of an
    execution that uses a host core (a CPU server on a shared host; 0 for a GPU)."""

    instances: int = 1
    max_batch: int = 0  # 0 or 1: one request per execution
    queue_delay_ms: float = 0.0  # dynamic batcher's max_queue_delay
    preferred_batch: tuple[int, ...] = ()
    fixed_ms: float = 0.0
    per_request_ms: float = 0.0
    per_unit_ms: float = 0.0
    empirical: bool = False
    cpu_share: float = 0.0
    bytes_per_unit: float = 0.0  # request bytes per unit of input size (network bandwidth)

    def batch_ms(self, sizes: list[float], demands: list[float]) -> float:
        """Execution time of one batch (see the class docstring)."""
        b = len(sizes)
        if self.empirical:
            return max(sum(demands) - (b - 1) * self.fixed_ms, 0.0)
        return self.fixed_ms + self.per_request_ms * b + self.per_unit_ms * sum(sizes)


@dataclass(frozen=True)
class ServerKind:
    """One kind of server (a CPU tritonserver on this host, a GPU): its models' curves."""

    models: dict[str, ModelCurve]
    description: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Calibration:
    name: str
    provenance: dict[str, Any]
    events: dict[str, np.ndarray]  # equal-length columns (see the module docstring); may be empty
    servers: dict[str, ServerKind]
    pileup: float | None = None
    rtt_ms: float = 0.0  # round trip of a call on the calibration's set-up, outside the server's demand
    host: dict[str, float] = field(default_factory=dict)  # cores, overhead_cpu_ms_per_event, dispatch_ms, worker_outside_cpu_ms_per_event

    @property
    def n_events(self) -> int:
        return len(self.events.get("outcome", ()))


# measured later than the others: a calibration made before lacks them (assign: 0 for every
# event; idle_gap_ms, the worker's idle time before the event, null where unknown: no idle slowdown)
OPTIONAL_EVENT_COLUMNS = ("assign", "idle_gap_ms")


def event_columns() -> tuple[str, ...]:
    """The columns an events calibration carries."""
    return ("build", "transfer", *CPU_STEPS, *(f"{m}_demand" for m in MODELS), *(f"{m}_size" for m in MODELS),
            *(f"{m}_called" for m in MODELS), "outcome")


def to_json(cal: Calibration) -> dict[str, Any]:
    """Plain data for a calibration file."""
    events = {}
    for name, col in cal.events.items():
        if name == "outcome":
            events[name] = [OUTCOMES[i] for i in col]
        elif col.dtype == bool:
            events[name] = [bool(x) for x in col]
        else:
            events[name] = [round(float(x), 4) if np.isfinite(x) else None for x in col]
    return {"format": FORMAT, "version": VERSION, "name": cal.name, "provenance": cal.provenance, "pileup": cal.pileup,
            "rtt_ms": cal.rtt_ms, "host": cal.host,
            "servers": {k: {"description": s.description, "provenance": s.provenance,
                            "models": {m: {**asdict(c), "preferred_batch": list(c.preferred_batch)} for m, c in s.models.items()}}
                        for k, s in cal.servers.items()},
            "events": events}


def from_json(data: dict[str, Any], where: str = "calibration") -> Calibration:
    """A Calibration from plain data; a wrong format, version or column is named."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{where}: not a trigger-sim calibration (no \"format\": \"{FORMAT}\")")
    if data.get("version") != VERSION:
        raise ConfigError(f"{where}: calibration version {data.get('version')!r}; this build reads version {VERSION}")
    servers = {}
    for kind, s in (data.get("servers") or {}).items():
        models = {}
        for model, c in (s.get("models") or {}).items():
            known = set(ModelCurve.__dataclass_fields__)
            unknown = set(c) - known
            if unknown:
                raise ConfigError(f"{where}: servers.{kind}.models.{model}: unknown key(s) {', '.join(sorted(unknown))}")
            models[model] = ModelCurve(**{**c, "preferred_batch": tuple(c.get("preferred_batch", ()))})
        servers[kind] = ServerKind(models, s.get("description", ""), s.get("provenance", {}))
    raw = data.get("events") or {}
    events: dict[str, np.ndarray] = {}
    if raw:
        missing = set(event_columns()) - set(raw)
        if missing:
            raise ConfigError(f"{where}: events lack column(s) {', '.join(sorted(missing))}")
        lengths = {len(v) for v in raw.values()}
        if len(lengths) != 1:
            raise ConfigError(f"{where}: event columns differ in length ({sorted(lengths)})")
        for name in (*event_columns(), *(c for c in OPTIONAL_EVENT_COLUMNS if c in raw)):
            if name == "outcome":
                bad = set(raw[name]) - set(OUTCOMES)
                if bad:
                    raise ConfigError(f"{where}: events.outcome has {sorted(bad)}; expected {OUTCOMES}")
                events[name] = np.array([OUTCOMES.index(o) for o in raw[name]], np.int8)
            elif name.endswith("_called"):
                events[name] = np.array(raw[name], bool)
            else:
                events[name] = np.array([np.nan if x is None else x for x in raw[name]], np.float64)
    return Calibration(name=str(data.get("name", "")), provenance=dict(data.get("provenance", {})), events=events,
                       servers=servers, pileup=data.get("pileup"), rtt_ms=float(data.get("rtt_ms", 0.0)),
                       host=dict(data.get("host", {})))


def save(cal: Calibration, path: str | Path) -> None:
    """Write the calibration: readable metadata, one line per event column."""
    data = to_json(cal)
    events = data.pop("events")
    head = json.dumps(data, indent=1)
    if events:
        lines = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in events.items())
        head = head[:-2] + ',\n "events": {\n' + lines + "\n }\n}"
    Path(path).write_text(head + "\n")


def load(path: str | Path) -> Calibration:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the calibration: {err}") from err
    return from_json(data, str(path))


def load_merged(paths: list[str | Path]) -> Calibration:
    """The first file's events with every file's servers (later files add or replace kinds)."""
    if not paths:
        raise ConfigError("no calibration given: pass --calibration FILE (configs/calibrations/ has shipped ones)")
    cals = [load(p) for p in paths]
    return merge(cals[0], *cals[1:])


def merge(base: Calibration, *others: Calibration) -> Calibration:
    servers = dict(base.servers)
    for other in others:
        servers.update(other.servers)
    return replace(base, servers=servers)


def server_kind(cal: Calibration, kind: str) -> tuple[str, ServerKind]:
    """The named server kind ("" = the calibration's first), or an error listing the known ones."""
    if not cal.servers:
        raise ConfigError(f"calibration {cal.name!r} has no server curves")
    if not kind:
        kind = next(iter(cal.servers))
    if kind not in cal.servers:
        raise ConfigError(f"server kind {kind!r} is not in the calibration; known: {', '.join(cal.servers)}")
    return kind, cal.servers[kind]
