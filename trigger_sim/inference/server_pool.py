"""Which server gets an inference call: the pool's decisions, without I/O (time is passed in).

Per server: the models it serves (from its repository index; None until it was reached),
its requests outstanding, a circuit breaker (`breaker.CircuitBreaker`), calls, failures and
a latency histogram. A call goes to the healthy server with the model that has the fewest
requests outstanding (least request, Envoy's default balancing, which SuperSONIC uses);
ties go round-robin per model, so an idle pool spreads each model's calls (one turn for
all models would send an event's two calls, GNN then tagger, always to the same servers). A server whose breaker is open gets
no calls; once its open time has passed it is due a probe (a ready check, by the shell) and
rejoins when the probe succeeds. Within one call a failed server is excluded, so the retry
chain (another healthy server, then the caller's local fallback) never asks it twice.

Thread-safe: every method takes the pool's lock (workers with several requests in flight
call it from the threads their answers arrive on).
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from trigger_sim.inference.breaker import BreakerState, CircuitBreaker
from trigger_sim.latency_buckets import LatencyBuckets


@dataclass
class ServerState:
    address: str
    breaker: CircuitBreaker
    models: frozenset[str] | None = None  # None: not known (never reached)
    outstanding: int = 0
    calls: int = 0  # requests sent
    failures: int = 0  # of those, failed or past their deadline
    probes_ok: int = 0  # down, then back after a successful probe
    latency: LatencyBuckets = field(default_factory=LatencyBuckets)  # answered calls, ms
    per_model: dict[str, list[int]] = field(default_factory=dict)  # model -> [sent, failed]

    @property
    def healthy(self) -> bool:
        return self.breaker.state is BreakerState.CLOSED and self.models is not None


class ServerPool:
    def __init__(self, addresses: Iterable[str], failure_threshold: int, open_ns: int):
        """`failure_threshold` consecutive failures take a server out for `open_ns`, then it is probed."""
        self.servers = {a: ServerState(a, CircuitBreaker(failure_threshold, open_ns)) for a in addresses}
        if not self.servers:
            raise ValueError("a server pool needs at least one address")
        self._order = list(self.servers)
        self._turn: dict[str, int] = {}  # per model: where the round-robin among ties starts
        self._lock = threading.Lock()

    def set_models(self, address: str, models: Collection[str]) -> None:
        """What the server's repository index says it serves (READY models)."""
        with self._lock:
            self.servers[address].models = frozenset(models)

    def mark_down(self, address: str, now_ns: int) -> None:
        """The server could not be reached (e.g. at start): out until a probe succeeds."""
        with self._lock:
            self.servers[address].breaker.trip(now_ns)

    def choose(self, model: str, exclude: Collection[str] = ()) -> str | None:
        """The healthy server with `model` and the fewest requests outstanding, not in
        `exclude` (tried in this call); None when there is none."""
        with self._lock:
            n = len(self._order)
            turn = self._turn.get(model, 0)
            best, best_key = None, None
            for k in range(n):
                address = self._order[(turn + k) % n]
                s = self.servers[address]
                if address in exclude or not s.healthy or model not in s.models:
                    continue
                if best_key is None or s.outstanding < best_key:
                    best, best_key = address, s.outstanding
            if best is not None:
                self._turn[model] = (self._order.index(best) + 1) % n
            return best

    def has_model(self, model: str) -> list[str]:
        """Every server that serves `model`, healthy or not (for error messages)."""
        with self._lock:
            return [a for a, s in self.servers.items() if s.models is None or model in s.models]

    def begin(self, address: str, model: str = "") -> None:
        """A request (for `model`) goes to `address`."""
        with self._lock:
            s = self.servers[address]
            s.outstanding += 1
            s.calls += 1
            s.per_model.setdefault(model, [0, 0])[0] += 1

    def finish(self, address: str, ok: bool, latency_ns: int, now_ns: int, model: str = "") -> None:
        """The request (for `model`) to `address` came back: answered (`ok`) or failed."""
        with self._lock:
            s = self.servers[address]
            s.outstanding -= 1
            if ok:
                s.latency.add(latency_ns / 1e6)
                s.breaker.record_success(now_ns)
            else:
                s.failures += 1
                s.per_model.setdefault(model, [0, 0])[1] += 1
                if s.breaker.state is not BreakerState.OPEN:  # a late failure must not extend the open time
                    s.breaker.record_failure(now_ns)

    def due_probes(self, now_ns: int) -> list[str]:
        """Servers out of the pool whose open time has passed: each is now being probed
        (half-open) until `probe_done` says how it went."""
        with self._lock:
            return [a for a, s in self.servers.items() if s.breaker.state is BreakerState.OPEN and s.breaker.allow(now_ns)]

    def probe_done(self, address: str, ok: bool, now_ns: int, models: Collection[str] | None = None) -> None:
        """A probe's outcome: a server that answered (with `models`) rejoins; else it stays out."""
        with self._lock:
            s = self.servers[address]
            if ok:
                if models is not None:
                    s.models = frozenset(models)
                s.breaker.record_success(now_ns)
                s.probes_ok += 1
            else:
                s.breaker.record_failure(now_ns)

    def describe(self) -> str:
        """One line on every server's state, for 'no healthy server' errors."""
        with self._lock:
            return ", ".join(f"{a} {'up' if s.healthy else 'down'}" for a, s in self.servers.items())

    def counters(self) -> dict[str, dict]:
        """Per address: calls, failures, rejoined (probes that brought it back), the
        latency histogram as pairs (summed over workers by the summary), and per model the
        requests answered and failed (`triton_calls`, `triton_failures`, as a service counts them)."""
        with self._lock:
            return {a: {"calls": s.calls, "failures": s.failures, "rejoined": s.probes_ok,
                        "breaker_opened": s.breaker.times_opened, "latency_buckets": s.latency.as_pairs(),
                        "models": {m: {"triton_calls": sent - failed, "triton_failures": failed}
                                   for m, (sent, failed) in sorted(s.per_model.items())}}
                    for a, s in self.servers.items()}
