"""Farm configuration: TOML files loaded into frozen dataclasses.

Every key has a default, so the farm runs with no file at all (the built-in default).
A file only overrides what it names; an unknown key is an error that names the file and
the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trigger_sim.errors import ConfigError
from trigger_sim.liveness import HEARTBEAT_S
from trigger_sim.models.registry import MODEL_NAMES

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "configs"
MODEL_REPOSITORY = REPO_ROOT / "model_repository"


@dataclass(frozen=True)
class RunConfig:
    """Run identity and the master seed (every event is reproducible from seed and L1 id)."""

    run_number: int = 1
    seed: int = 20261126

    def __post_init__(self) -> None:
        if self.run_number < 0 or self.seed < 0:
            raise ValueError("run.run_number and run.seed must be >= 0")


@dataclass(frozen=True)
class TrackerConfig:
    """Cylindrical silicon tracker: barrel layers in a solenoid field."""

    layer_radii_mm: tuple[float, ...] = (32.0, 72.0, 116.0, 172.0, 260.0, 360.0, 500.0, 660.0, 820.0, 1000.0)
    half_length_mm: float = 1100.0
    module_length_mm: float = 100.0  # module size along z (module ids)
    module_width_mm: float = 20.0  # module size along r-phi (module ids)
    field_t: float = 2.0
    resolution_rphi_mm: float = 0.015
    resolution_z_mm: float = 0.05
    noise_hits_per_layer: float = 5.0
    efficiency: float = 0.99
    n_sectors: int = 2  # readout partitions in phi

    def __post_init__(self) -> None:
        radii = self.layer_radii_mm
        if len(radii) < 2 or any(b <= a for a, b in zip(radii, radii[1:])) or radii[0] <= 0:
            raise ValueError("tracker.layer_radii_mm must be at least two increasing positive radii")
        _positive(self, "half_length_mm", "module_length_mm", "module_width_mm", "field_t", "n_sectors")
        _fraction(self, "efficiency")


@dataclass(frozen=True)
class CaloConfig:
    """Eta-phi tower calorimeter with electromagnetic and hadronic compartments."""

    eta_max: float = 2.5
    n_eta: int = 50
    n_phi: int = 64
    em_stochastic: float = 0.10  # sigma/E = a/sqrt(E) (+) noise
    had_stochastic: float = 0.50
    em_noise_gev: float = 0.05
    had_noise_gev: float = 0.10
    zero_suppression_gev: float = 0.3
    had_em_fraction: float = 0.3  # share of a charged hadron's energy deposited in the EM layer
    had_response: float = 0.8  # hadrons' visible energy relative to electrons' (e/h > 1: non-compensating)
    em_shower_width: float = 0.01  # EM shower lateral scale (eta-phi units, ~Moliere radius / calo radius); 0: one tower
    n_regions: int = 2  # readout partitions in eta

    def __post_init__(self) -> None:
        _positive(self, "eta_max", "n_eta", "n_phi", "n_regions")
        if self.n_eta % self.n_regions:
            raise ValueError("calo.n_eta must be a multiple of calo.n_regions")
        _fraction(self, "had_em_fraction")
        if not 0.0 < self.had_response <= 2.0:  # also rejects NaN
            raise ValueError(f"calo.had_response must be within (0, 2], got {self.had_response!r}")
        if not 0.0 <= self.em_shower_width <= 1.0:
            raise ValueError(f"calo.em_shower_width must be within [0, 1], got {self.em_shower_width!r}")


@dataclass(frozen=True)
class PhysicsConfig:
    """Event mix: pile-up minimum bias, plus a hard process (dijet, W -> e nu, H -> tau tau) in a fraction of events."""

    pileup_mean: float = 20.0  # mean pile-up collisions per crossing, 0 to 300
    dijet_fraction: float = 0.25  # fraction of Level-1 accepts with a hard QCD dijet
    electron_fraction: float = 0.05  # fraction with one isolated electron (W -> e nu)
    signal_fraction: float = 0.02  # fraction with the rare signal H(125) -> tau tau, both taus hadronic
    dijet_min_pt_gev: float = 30.0
    dijet_spectrum_index: float = 4.0  # dN/dpT ~ pT^-n above the minimum
    minbias_charged_per_eta: float = 6.0
    vertex_sigma_z_mm: float = 45.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.pileup_mean <= 300.0:  # also rejects NaN
            raise ValueError(f"physics.pileup_mean must be within [0, 300], got {self.pileup_mean!r}")
        _fraction(self, "dijet_fraction", "electron_fraction", "signal_fraction")
        total = self.dijet_fraction + self.electron_fraction + self.signal_fraction
        if not total <= 1.0:
            raise ValueError(f"physics.dijet_fraction + physics.electron_fraction + physics.signal_fraction must be "
                             f"<= 1 (the rest of the events are minimum bias), got {total!r}")
        _positive(self, "dijet_min_pt_gev", "dijet_spectrum_index")


@dataclass(frozen=True)
class ReadoutConfig:
    """Level-1 accept pacing of the readout sources."""

    rate_hz: float = 25.0
    pattern: str = "poisson"  # "constant", "poisson" or "burst"
    burst_factor: float = 10.0  # burst pattern: rate inside a burst / mean rate
    burst_events: int = 50  # burst pattern: events per burst
    buffer_events: int = 2048  # events whose fragments the readout keeps until decided; beyond it Level-1 busy (one host: at most what the node holds)

    def __post_init__(self) -> None:
        _positive(self, "rate_hz", "buffer_events")
        if self.pattern not in ("constant", "poisson", "burst"):
            raise ValueError(f"readout.pattern must be 'constant', 'poisson' or 'burst', not {self.pattern!r}")
        if not self.burst_factor >= 1 or self.burst_events < 1:
            raise ValueError("readout.burst_factor must be >= 1 and readout.burst_events >= 1")


MIN_EVENT_RING_MB = 1 / 1024  # 1 kB: a smaller ring (a few bytes) cannot even be created, and the builder would not start


@dataclass(frozen=True)
class BuilderConfig:
    """Event builder bookkeeping limits: what bounds its memory."""

    build_timeout_ms: float = 1000.0  # an event still incomplete after this goes to MissingData
    max_building: int = 512  # events under construction; beyond it the oldest is timed out early
    max_waiting: int = 64  # complete events waiting for a free worker; beyond it sources are not read
    credits_per_worker: int = 1  # events a worker may hold at once
    input_hwm: int = 50  # fragments queued per source link (each side) before sends block
    event_ring_mb: float = 32.0  # shared memory the builder hands events to its workers through; 0: inside the messages

    def __post_init__(self) -> None:
        _positive(self, "build_timeout_ms", "max_building", "max_waiting", "credits_per_worker", "input_hwm")
        if not (self.event_ring_mb == 0 or self.event_ring_mb >= MIN_EVENT_RING_MB):
            raise ValueError(f"builder.event_ring_mb = {self.event_ring_mb}: give 0 (events inside the messages) "
                             f"or at least {MIN_EVENT_RING_MB:g}")


TRACK_BUILDERS = ("walk", "chains")  # kernels/track_walk.py, kernels/track_building.py


@dataclass(frozen=True)
class FeatureConfig:
    """Parameters of the feature-extraction kernels."""

    jet_seed_gev: float = 2.0
    jet_radius: float = 0.4
    jet_min_pt_gev: float = 10.0
    max_jets: int = 16
    jet_pileup_subtraction: bool = True  # the menu's jet thresholds and HT on pT - rho x area (trigger_sim/pileup.py)
    graph_phi_slope_max: float = 0.00045  # rad/mm; 2 T field: pT > ~0.7 GeV (keeps every true edge of pT > 1 GeV)
    graph_z0_max_mm: float = 200.0
    graph_max_edges: int = 2_000_000
    edge_score_cut: float = 0.87  # edge classifier working point (scripts/train_edge_classifier.py chooses it)
    em_seed_gev: float = 5.0  # EM cluster seeds (electron candidates)
    max_clusters: int = 8
    track_min_hits: int = 4  # chains of GNN-selected edges shorter than this are not tracks
    # Geometric rescue of track building (kernels/track_building.py, step 1b): an edge scored above
    # track_rescue_score_cut (below edge_score_cut) is kept where a kept edge at one of its hits
    # continues it within these slope differences; repeated track_rescue_passes times (0: off).
    track_rescue_score_cut: float = 0.1
    track_rescue_max_dphi_slope: float = 5e-5  # rad/mm
    track_rescue_max_dz_slope: float = 0.02
    track_rescue_passes: int = 3
    # Track building: "walk" (kernels/track_walk.py: tracks grown from seed edges along the
    # continuation that agrees best in direction) or "chains" (kernels/track_building.py: each
    # hit's best edge, with the rescue above). The walk's seeds are edges scored above
    # track_walk_seed_cut (most confident first), it may use edges scored above
    # track_walk_candidate_cut, and a continuation must agree within track_walk_max_sigma
    # standard deviations of the hit resolutions plus track_walk_bend_rad for curved tracks.
    track_builder: str = "walk"
    track_walk_seed_cut: float = 0.1
    track_walk_candidate_cut: float = 0.01
    track_walk_max_sigma: float = 5.0
    track_walk_bend_rad: float = 1e-3
    track_max_chi2_ndf: float = 10.0  # tracks whose helix fit is worse (a wrong hit) are not used
    track_max_d0_mm: float = 2.0  # nor tracks that miss the beam line by more
    vertex_track_min_pt_gev: float = 1.0  # tracks that find the primary vertex and count in jets
    vertex_max_dz_mm: float = 10.0  # a track is from the primary vertex if |z0 - vertex z| < this
    electron_match_deta: float = 0.05  # an EM cluster and a track match within these
    electron_match_dphi: float = 0.05

    def __post_init__(self) -> None:
        _positive(self, "jet_seed_gev", "jet_radius", "max_jets", "graph_phi_slope_max", "graph_z0_max_mm", "graph_max_edges",
                  "em_seed_gev", "max_clusters", "track_min_hits", "track_max_chi2_ndf", "track_max_d0_mm", "vertex_track_min_pt_gev", "vertex_max_dz_mm",
                  "electron_match_deta", "electron_match_dphi")
        _fraction(self, "edge_score_cut", "track_rescue_score_cut")
        _positive(self, "track_rescue_max_dphi_slope", "track_rescue_max_dz_slope")
        if self.track_rescue_passes < 0:
            raise ValueError(f"features.track_rescue_passes must be >= 0, got {self.track_rescue_passes}")
        if self.track_builder not in TRACK_BUILDERS:
            raise ValueError(f"features.track_builder must be one of {list(TRACK_BUILDERS)}, got {self.track_builder!r}")
        _fraction(self, "track_walk_seed_cut", "track_walk_candidate_cut")
        _positive(self, "track_walk_max_sigma")
        if not self.track_walk_bend_rad >= 0:
            raise ValueError(f"features.track_walk_bend_rad must be >= 0, got {self.track_walk_bend_rad}")


MAX_SLOTS = 64  # event slots per worker: far more than a server's latency needs to be hidden
MIN_SILENCE_MS = 4 * HEARTBEAT_S * 1e3  # a worker silent this long has missed several heartbeats


@dataclass(frozen=True)
class WorkerConfig:
    """HLT worker processes."""

    count: int = 0  # 0: one per CPU core
    budget_ms: float = 500.0  # hard per-event budget; inference deadlines never exceed what is left
    stall_margin_ms: float = 2000.0  # a worker silent past budget_ms + this is killed, restarted, its event retried
    # events a worker holds at once: it works on one while the others' requests are on the server
    slots: int = 1

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError("worker.count must be >= 0 (0 means one per core)")
        if not 1 <= self.slots <= MAX_SLOTS:
            raise ValueError(f"worker.slots must be within 1..{MAX_SLOTS} (events a worker holds at once), not {self.slots}")
        _positive(self, "budget_ms", "stall_margin_ms")
        if self.budget_ms + self.stall_margin_ms < MIN_SILENCE_MS:
            raise ValueError(f"worker.budget_ms + worker.stall_margin_ms = {self.budget_ms + self.stall_margin_ms:g} ms: "
                             f"give at least {MIN_SILENCE_MS:g} ms (idle workers send a heartbeat every "
                             f"{HEARTBEAT_S * 1e3:g} ms; a shorter limit would kill healthy workers)")

    @property
    def resolved_count(self) -> int:
        return self.count or (os.cpu_count() or 1)


@dataclass(frozen=True)
class ModelDeadlines:
    """`[inference.deadline_ms]`: the per-call deadline of each served model, in ms (capped by
    what is left of the event's soft timeout). Far above the compute time, as SONIC's clients
    set them: a deadline near the compute time turns a slow moment of the server into a
    fallback (the event computed twice). The GNN at pile-up 60 takes 30-100 ms of server
    time on two cores and the tagger about 1 ms; 250 ms still leaves the fallback ~100 ms
    before the 400 ms soft timeout of the default 500 ms budget."""

    edge_classifier: float = 250.0
    jet_tagger: float = 100.0

    def __post_init__(self) -> None:
        _positive(self, *MODEL_NAMES)

    @classmethod
    def all(cls, deadline_ms: float) -> "ModelDeadlines":
        """The same deadline for every model (what `--timeout-ms` sets)."""
        return cls(**{name: deadline_ms for name in MODEL_NAMES})


SHARED_MEMORY_MODES = ("auto", "on", "off")
DEVICE_MODES = ("auto", "cpu", "gpu")


GRPC_MIN_BACKOFF_MS = 100  # gRPC raises a shorter initial or maximum reconnect backoff to this


@dataclass(frozen=True)
class InferenceConfig:
    """Inference as a service: where the server is, deadlines, and the circuit breaker."""

    triton_url: str = ""  # one server (host:port); empty and no `servers`: start local servers
    servers: tuple[str, ...] = ()  # a pool of servers (host:port each); empty: `triton_url`, or local servers
    local_servers: int = 1  # local tritonservers started when no server is given, each on its own ports
    models: tuple[str, ...] = MODEL_NAMES  # called on the server; others run in the worker
    timeout_ms: float = 0.0  # > 0: the deadline of every model (overrides deadline_ms); 0: per model (deadline_ms)
    deadline_ms: ModelDeadlines = field(default_factory=ModelDeadlines)  # per-model deadlines
    breaker_failures: int = 3  # consecutive failures that open the breaker
    breaker_open_ms: float = 1000.0  # how long calls skip the server before one probe
    # > 0: a client that lost a server tries to connect again about every this many ms (gRPC's
    # initial and maximum reconnect backoff, +-20 % jitter; >= 100, gRPC's floor); 0: gRPC's
    # own (1 s, x1.6 each, up to 120 s)
    reconnect_backoff_ms: float = 0.0
    server_start_timeout_s: float = 60.0
    shared_memory: str = "auto"  # graph-sized requests through system shared memory: "auto" (server on loopback), "on", "off"
    device: str = "auto"  # where a local server runs the models: "auto" (a GPU if torch can use one), "cpu", "gpu"

    def __post_init__(self) -> None:
        _positive(self, "breaker_failures", "breaker_open_ms", "server_start_timeout_s", "local_servers")
        b = self.reconnect_backoff_ms
        if not (b == 0 or (b >= GRPC_MIN_BACKOFF_MS and float(b).is_integer())):
            raise ValueError(f"inference.reconnect_backoff_ms must be 0 (gRPC's own backoff) or whole milliseconds >= "
                             f"{GRPC_MIN_BACKOFF_MS} (gRPC raises anything shorter to that), got {b!r}")
        if not self.timeout_ms >= 0:
            raise ValueError(f"inference.timeout_ms must be >= 0 (0: the per-model [inference.deadline_ms]), got {self.timeout_ms!r}")
        if self.triton_url and self.servers:
            raise ValueError("inference.triton_url and inference.servers both name servers: list them all in servers")
        for address in self.server_addresses:
            check_address(address, "inference.servers")
        if self.shared_memory not in SHARED_MEMORY_MODES:
            raise ValueError(f"inference.shared_memory: {self.shared_memory!r} is not one of {list(SHARED_MEMORY_MODES)}")
        if self.device not in DEVICE_MODES:
            raise ValueError(f"inference.device: {self.device!r} is not one of {list(DEVICE_MODES)}")
        unknown = [m for m in self.models if m not in MODEL_NAMES]
        if unknown:
            raise ValueError(f"inference.models: unknown model {unknown[0]!r}; the HLT sequence uses {list(MODEL_NAMES)}")

    @property
    def server_addresses(self) -> tuple[str, ...]:
        """The servers the farm is given (host:port each); empty: it starts its own."""
        return self.servers or ((self.triton_url,) if self.triton_url else ())

    def deadline_s(self, model: str) -> float:
        """The per-call deadline of `model`, in seconds (`timeout_ms` when set, else its own)."""
        return (self.timeout_ms or getattr(self.deadline_ms, model)) / 1e3

    def uses_shared_memory(self, triton_url: str) -> bool:
        """Whether a client of the server at `triton_url` sends big requests through /dev/shm:
        only a client on the server's host can ("auto" judges by a loopback address)."""
        if self.shared_memory != "auto":
            return self.shared_memory == "on"
        return is_loopback(triton_url.rsplit(":", 1)[0])


@dataclass(frozen=True)
class FaultConfig:
    """Readout fault injection, for fault tests (all off by default)."""

    corrupt_fraction: float = 0.0  # fragments with one payload byte flipped (CRC catches it)
    truncate_fraction: float = 0.0  # fragments with their last frame cut short
    duplicate_fraction: float = 0.0  # fragments sent twice
    foreign_fraction: float = 0.0  # extra fragments of another run
    silent_source: int = -1  # index (in source order) of a source that stops sending...
    silent_after_events: int = 0  # ...after this many events

    def __post_init__(self) -> None:
        _fraction(self, "corrupt_fraction", "truncate_fraction", "duplicate_fraction", "foreign_fraction")

    @property
    def any(self) -> bool:
        return any((self.corrupt_fraction, self.truncate_fraction, self.duplicate_fraction, self.foreign_fraction)) or self.silent_source >= 0


@dataclass(frozen=True)
class OutputConfig:
    """Where output streams and summaries go."""

    directory: str = "runs"
    write_streams: bool = True


@dataclass(frozen=True)
class MonitoringConfig:
    """Prometheus metrics: one HTTP endpoint (/metrics) per farm process."""

    base_port: int = 0  # 0: off; else run control (role `supervisor`) = base, builder = base + 1, readout = base + 2, worker i = base + 3 + i
    address: str = "127.0.0.1"  # where the endpoints listen ("0.0.0.0": every interface)
    linger_s: float = 2.0  # run control's endpoint stays up this long after the run, so a last scrape sees the final values
    # with base_port set, the farm's local Triton server i serves its own metrics (nv_inference_*)
    # on triton_base_port + i, where the shipped scrape configuration looks; 0: free ports
    triton_base_port: int = 8002

    def __post_init__(self) -> None:
        if not 0 <= self.base_port <= 65535 - 3:
            raise ValueError(f"monitoring.base_port must be 0 (off) or a port from 1 to 65532, got {self.base_port!r}")
        if not self.address.strip():
            raise ValueError("monitoring.address is empty: give an address such as 127.0.0.1")
        if not 0 <= self.triton_base_port <= 65535 - 15:
            raise ValueError(f"monitoring.triton_base_port must be 0 (free ports) or a port from 1 to 65520, got {self.triton_base_port!r}")
        if not 0.0 <= self.linger_s <= 600.0:  # also rejects NaN
            raise ValueError(f"monitoring.linger_s must be within [0, 600], got {self.linger_s!r}")

    @property
    def enabled(self) -> bool:
        return self.base_port > 0

    def triton_metrics_port(self, index: int) -> int:
        """Where the farm's local server `index` serves Triton's metrics (0: a free port)."""
        return self.triton_base_port + index if self.enabled and self.triton_base_port else 0


def check_address(address: str, key: str) -> None:
    """A server address must be host:port (a gRPC endpoint), with a port number."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{key}: {address!r} is not host:port (e.g. 127.0.0.1:8001, the server's gRPC port)")


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost (what only this machine can reach)."""
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:  # a host or interface name, or a wildcard such as "*"
        return False


@dataclass(frozen=True)
class NetworkConfig:
    """Where farm sockets listen, ZeroMQ CURVE authentication, and TLS to a remote Triton server."""

    bind_address: str = "127.0.0.1"  # any address but loopback requires CURVE keys
    curve: bool = False  # CURVE even on loopback
    curve_keys_dir: str = ""  # folder made by `trigger-sim keys DIR` (relative: to the working folder)
    triton_tls: bool = False  # gRPC over TLS to inference.triton_url
    triton_root_certificates: str = ""  # PEM file of the server's CA; empty: the system's roots
    triton_private_key: str = ""  # PEM client key, for servers that require client certificates
    triton_certificate_chain: str = ""  # PEM client certificate chain, with triton_private_key

    def __post_init__(self) -> None:
        if not self.bind_address.strip():
            raise ConfigError("network.bind_address is empty: give an address such as 127.0.0.1")
        if self.curve_enabled and not self.curve_keys_dir:
            why = "network.curve = true" if self.curve else f"network.bind_address {self.bind_address!r} is not loopback, so it"
            raise ConfigError(f"{why} requires ZeroMQ CURVE keys: run `trigger-sim keys DIR` and set network.curve_keys_dir = DIR")
        tls_files = (self.triton_root_certificates, self.triton_private_key, self.triton_certificate_chain)
        if any(tls_files) and not self.triton_tls:
            raise ConfigError("network.triton_* certificate files are set but network.triton_tls is false: "
                              "set it to true or remove them")
        if bool(self.triton_private_key) != bool(self.triton_certificate_chain):
            raise ConfigError("network.triton_private_key and network.triton_certificate_chain go together: set both or neither")

    @property
    def curve_enabled(self) -> bool:
        return self.curve or not is_loopback(self.bind_address)

    def triton_client_options(self) -> dict[str, Any]:
        """Keyword arguments for `tritonclient.grpc.InferenceServerClient` (TLS settings)."""
        return {"ssl": self.triton_tls, "root_certificates": self.triton_root_certificates or None,
                "private_key": self.triton_private_key or None, "certificate_chain": self.triton_certificate_chain or None}


@dataclass(frozen=True)
class FarmConfig:
    """Everything a farm run needs; `load_config` builds it from TOML."""

    run: RunConfig = field(default_factory=RunConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    calo: CaloConfig = field(default_factory=CaloConfig)
    physics: PhysicsConfig = field(default_factory=PhysicsConfig)
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)
    builder: BuilderConfig = field(default_factory=BuilderConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    faults: FaultConfig = field(default_factory=FaultConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    menu: str = str(CONFIG_DIR / "menu.toml")

    def __post_init__(self) -> None:
        if self.network.triton_tls and not self.inference.server_addresses:
            raise ConfigError("network.triton_tls needs a remote server (inference.triton_url or inference.servers): the local server the farm starts speaks "
                              "plain gRPC on loopback; give the remote server's host:port or set triton_tls = false")


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        if not getattr(obj, name) > 0:  # also rejects NaN
            raise ValueError(f"{name} must be > 0, got {getattr(obj, name)!r}")


def _fraction(obj: Any, *names: str) -> None:
    for name in names:
        if not 0.0 <= getattr(obj, name) <= 1.0:
            raise ValueError(f"{name} must be within [0, 1], got {getattr(obj, name)!r}")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check `value` against a type hint (int, float, str, bool, tuple[...]) and convert."""
    origin = typing.get_origin(hint)
    if origin in (tuple,):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        (item,) = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return tuple(_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{where}: unsupported type {hint}")
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {hint}")


def from_mapping(cls: type, data: dict[str, Any], source: str, prefix: str = "") -> Any:
    """Build dataclass `cls` from a parsed TOML table, rejecting unknown keys.

    `source` names the file in error messages; `prefix` is the dotted path of the table.
    """
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{source}: key '{prefix}{key}'"
        if key not in names:
            known = ", ".join(sorted(names))
            raise ConfigError(f"{source}: unknown key '{prefix}{key}' (known keys here: {known})")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: expected a table [{prefix}{key}]")
            kwargs[key] = from_mapping(hint, value, source, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(value, hint, where)
    for f in dataclasses.fields(cls):
        if f.name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: missing key '{prefix}{f.name}' (required)")
    try:
        return cls(**kwargs)
    except (ValueError, ConfigError) as err:
        raise ConfigError(f"{source}: invalid value in [{prefix.rstrip('.') or 'top level'}]: {err}") from err


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning every failure into a ConfigError naming the file."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: configuration file not found") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}): is this a configuration file?") from err
    except IsADirectoryError as err:
        raise ConfigError(f"{path}: is a folder, not a configuration file") from err


def load_config(path: str | Path | None = None) -> FarmConfig:
    """Load a farm configuration; None gives the built-in default.

    A relative `menu` path in the file is taken relative to the file's folder.
    """
    if path is None:
        return FarmConfig()
    path = Path(path)
    data = read_toml(path)
    config = from_mapping(FarmConfig, data, str(path))
    if "menu" in data and not Path(config.menu).is_absolute():
        config = dataclasses.replace(config, menu=str((path.parent / config.menu).resolve()))
    return config


def with_overrides(config: FarmConfig, **sections: dict[str, Any]) -> FarmConfig:
    """Return `config` with some fields of some sections replaced (used by the CLI and tests)."""
    changes = {}
    for name, values in sections.items():
        if values:
            changes[name] = dataclasses.replace(getattr(config, name), **values)
    return dataclasses.replace(config, **changes)


def as_dict(config: Any) -> dict[str, Any]:
    """The configuration as plain data (for output-file headers and summaries)."""
    return dataclasses.asdict(config)
