"""The farm as a SimPy discrete-event model, mirroring the real farm's mechanisms.

Level-1 accepts arrive (constant, Poisson, bursts) and wait in the readout's buffer of
`readout_buffer_events` until the assignment service gives them an event slot of a node (a
Level-1 slot that finds the buffer full is vetoed: dead time, as the readout's). A node
offers `workers_per_node x (slots_per_worker + node_waiting_per_worker)` slots, handed out
oldest accept first, in the order they came back (nodes take turns); a slot is free again
when its event is decided, as the real service's (`trigger_sim.assignment`). The wait for a
slot and the assignment's round trip (drawn from the calibration) are the event's `assign`
step; then its fragments are at the node: the event is built on
the node (`build`, drawn from the calibration: first fragment to complete) and waits in the
node's builder for a free worker slot of that node (`queue`). Workers take events as
they become free; each worker holds up to `slots_per_worker` events and runs one CPU step at
a time (its core), so one event's inference wait lets another event compute. An event runs
its CPU steps (drawn together from one calibration row), calls each model on the pool (least
outstanding requests among servers whose breaker allows; one failover to another server on a
failed call), with a deadline of `timeout_ms` capped by the soft timeout. A call that fails
or misses its deadline counts against that server's breaker (one per worker and server, the
farm's own `CircuitBreaker`) and runs the local fallback (its CPU cost on the worker), unless
the soft timeout capped the deadline: then the event leaves at once (HltTimeout), as the real
worker's. The budget counts from the event's start in the worker (as the worker's watch);
the soft timeout is checked after every step; an event still running at the hard budget is
force-accepted into HltTimeout at that moment (the worker's watchdog), its slot busy until
the step ends. A slot's next event reaches it no sooner than the calibration's `dispatch_ms`
after its last one ended: the result carries the slot's credit back to the builder, which
only then sends the next event (the credit round trip; ~1 ms on this host, idle time of a
one-slot worker). With `host_cores`, worker steps, the servers' CPU share and the farm's own
per-event CPU (readout, builder, collector, and the worker's CPU outside its timed steps) all
queue for the same cores, whole bursts first come first served or, with `cpu_slice_ms`, in
time slices as the OS scheduler gives them (processor sharing). Without `host_cores` (workers on their own cores, the farm's own
processes elsewhere) the worker's CPU outside its timed steps (receiving, the calls' client
side, answering: the calibration's `worker_outside_cpu_ms_per_event`) takes the worker's core
after each event, before its next one can compute. An event's CPU steps and call demands
are longer after its worker idled (`idle_slowdown`: the calibration rows' own idle times give
the curve, and a low-rate run the factor at low rates), as the real farm's are.

Simulated time is in ms. Every Level-1 slot ends in exactly one place: vetoed (not an
accept), accepted, rejected or HltTimeout; `pending` after the run is lost and must be 0.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
import simpy

from trigger_sim.inference.breaker import CircuitBreaker
from trigger_sim.planning.channels import Backoff, Channel
from trigger_sim.planning.arrivals import arrival_times_s, farm_arrival_times_s
from trigger_sim.planning.calibration import CPU_STEPS, MODELS, Calibration, ServerKind, server_kind
from trigger_sim.planning.cores import Cores, CpuUser
from trigger_sim.planning.idle_slowdown import IdleCurve, fit, rate_scale
from trigger_sim.planning.sampling import draw
from trigger_sim.planning.servers import LeastOutstanding, Request, Server, kill_schedule
from trigger_sim.planning.spec import PlanSpec, check

PENDING, VETOED, ACCEPTED, REJECTED, TIMEOUT = -1, 0, 1, 2, 3
OUTCOME_NAMES = {VETOED: "vetoed", ACCEPTED: "accepted", REJECTED: "rejected", TIMEOUT: "HltTimeout"}
NONE, TRITON, FALLBACK, EXPIRED = 0, 1, 2, 3  # a model's path for one event
CHANNEL_STREAM = 0x6772  # the channels' random stream, beside the run's seed
REASONS = ("", "timeout", "unavailable", "breaker_open")
NS_PER_MS = 1_000_000


def idle_curve(cal: Calibration, kind: ServerKind) -> tuple[IdleCurve | None, np.ndarray | None]:
    """The calibration's idle-slowdown curve (`idle_slowdown.fit` on its rows' idle gaps and
    the work the model scales with it: CPU steps plus the demands of the models whose curve on
    `kind` takes each call's own demand; a fixed service time, a sleep or a GPU's curve, does
    not slow down with the worker) and each row's own factor; (None, None) when it holds no
    idle gaps."""
    if "idle_gap_ms" not in cal.events or not np.isfinite(cal.events["idle_gap_ms"]).any():
        return None, None
    work = sum(cal.events[s] for s in CPU_STEPS) + sum(cal.events[f"{m}_demand"] for m in MODELS
                                                       if kind.models[m].empirical)
    curve = fit(cal.events["idle_gap_ms"], work)
    return curve, curve.at(cal.events["idle_gap_ms"])


class FarmModel:
    """One simulation of `spec` drawing its inputs from `cal`; `run()` then read the arrays."""

    def __init__(self, spec: PlanSpec, cal: Calibration):
        self.spec = check(spec)
        f, a, n = spec.farm, spec.arrivals, spec.events
        rng = np.random.default_rng(spec.seed)
        self.kind_name, kind = server_kind(cal, f.server_kind)
        missing = set(MODELS) - set(kind.models)
        if missing:
            from trigger_sim.errors import ConfigError
            raise ConfigError(f"server kind {self.kind_name!r} has no curve for {', '.join(sorted(missing))}")
        self.cal, self.kind = cal, kind
        if a.seed >= 0:  # the real run's own Level-1 times
            self.t_l1_ms = farm_arrival_times_s(a, n, a.seed) * 1e3
        else:
            self.t_l1_ms = arrival_times_s(a.pattern, a.rate_hz, n, rng, a.burst_factor, a.burst_events) * 1e3
        self.draws = draw(cal, n, rng, spec.block_events)
        self.idle_curve, self._row_factor = idle_curve(cal, kind) if f.idle_slowdown else (None, None)
        # each event's steps and demands: the rate's factor, times its idle factor over its row's
        self.rate_scale = rate_scale(cal.host, a.rate_hz / (f.nodes * f.workers_per_node)) if f.idle_slowdown else 1.0
        self.scale = np.full(n, self.rate_scale)
        self.assign_ms = np.full(n, np.nan)  # accept to a node slot (the fragments then travel)
        self.ready_ms = np.full(n, np.nan)  # complete in its node's builder
        base_outcome = np.where(cal.events["outcome"][self.draws.row] == 0, ACCEPTED, REJECTED)
        self._base_outcome = base_outcome.astype(np.int8)
        # results, one entry per Level-1 slot
        self.outcome = np.full(n, PENDING, np.int8)
        self.decided_ms = np.full(n, np.nan)
        self.queue_ms = np.full(n, np.nan)
        self.worker_ms = np.full(n, np.nan)
        self.call_ms = {m: np.full(n, np.nan) for m in MODELS}
        self.path = {m: np.zeros(n, np.int8) for m in MODELS}
        self.reason = np.zeros(n, np.int8)  # the event's first fallback reason
        self.worker_of = np.full(n, -1, np.int32)
        self.node_of = np.full(n, -1, np.int32)  # the node the assignment service gave the event
        self._slot_freed = np.zeros(n, bool)  # its node slot given back (at its decision)
        self.breaker_opened = 0
        self.failovers = 0
        self.done = 0  # Level-1 slots with an outcome
        self.decided = 0  # events decided, counted as their worker slot ends (the farm's ledger counts a watchdog's at once)
        self._decided_waiters: dict[int, list[simpy.Event]] = {}

        env = self.env = simpy.Environment()
        self.all_done = env.event()
        self.host_cores = Cores(env, f.host_cores, f.cpu_slice_ms, f.cpu_fair) if f.host_cores else None
        self._overhead_user = CpuUser()  # the farm's own processes, one user of the cores
        self.pool = LeastOutstanding(f.servers)
        self.servers = [Server(env, i, kind, self.host_cores, self.pool) for i in range(f.servers)]
        for server in self.servers:
            server.offered_until_ms = float(self.t_l1_ms[-1])
        self.n_workers = f.nodes * f.workers_per_node
        self.waiting: deque[int] = deque()  # accepts in the readout's buffer, waiting for a node slot
        node_slots = f.workers_per_node * (f.slots_per_worker + f.node_waiting_per_worker)
        self.node_credits: deque[int] = deque(n for _ in range(node_slots) for n in range(f.nodes))  # a node per free slot
        self.node_queues = [simpy.Store(env) for _ in range(f.nodes)]  # built events waiting for a worker slot
        self.budget_ms, self.soft_ms = f.budget_ms, f.budget_ms * f.soft_fraction
        self.net_ms = {m: self._network_ms(m) for m in MODELS}
        self._overhead_pending = 0
        self._overhead_wake: simpy.Event | None = None
        self.breakers: list[dict[int, CircuitBreaker]] = []  # per worker: server index -> its breaker, made on first use
        # per worker: server index -> its gRPC channel, made on first use; their jitter has
        # its own generator, so a run without a kill draws nothing else differently
        self.channels: list[dict[int, Channel]] = [{} for _ in range(f.nodes * f.workers_per_node)]
        self.backoff = Backoff(f.reconnect_backoff_ms, f.reconnect_multiplier, f.reconnect_jitter, f.reconnect_max_backoff_ms)
        self._channel_rng = np.random.default_rng([spec.seed, CHANNEL_STREAM])
        self.unreachable_calls = 0  # calls failed at once on a channel still waiting to reconnect
        self._busy = [0] * self.n_workers  # events each worker is working on
        # when its last one ended; unknown before its first (factor 1, as the calibration's first rows)
        self._idle_since = [float("nan")] * self.n_workers
        for w in range(self.n_workers):
            cpu = simpy.Resource(env, 1) if f.slots_per_worker > 1 else None
            breakers: dict[int, CircuitBreaker] = {}
            self.breakers.append(breakers)
            user = CpuUser()  # the worker process on the host's cores: its slots' steps together
            for _ in range(f.slots_per_worker):
                env.process(self._slot(w, cpu, breakers, user))
        env.process(self._arrivals())
        self.overhead_ms = float(cal.host.get("overhead_cpu_ms_per_event", 0.0)) if self.host_cores else 0.0
        self.dispatch_ms = float(cal.host.get("dispatch_ms", 0.0))
        # with host_cores it is part of overhead_ms already
        self.outside_ms = 0.0 if self.host_cores else float(cal.host.get("worker_outside_cpu_ms_per_event", 0.0))
        if self.overhead_ms > 0:
            env.process(self._overhead())
        for k in f.kills:
            after = self.when_decided(k.after_decided) if k.after_decided > 0 else None
            env.process(kill_schedule(env, self.servers[k.server], k.at_s, k.restart_s, self.host_cores, k.restart_cpu_cores,
                                      after, k.restart_cpu_s, k.restart_processes))

    def _network_ms(self, model: str) -> np.ndarray:
        """Per event: the call's round trip beyond the calibration's, plus its bytes over the link."""
        f = self.spec.farm
        extra = self.cal.rtt_ms + f.network_rtt_ms
        if f.network_gbps > 0:
            bytes_ = self.draws.size[model] * self.kind.models[model].bytes_per_unit
            return extra + bytes_ * 8 / (f.network_gbps * 1e9) * 1e3
        return np.full(self.spec.events, extra)

    # -- processes ---------------------------------------------------------------------------
    def _arrivals(self):
        env, buffer, waiting = self.env, self.spec.farm.readout_buffer_events, self.waiting
        for i, t in enumerate(self.t_l1_ms.tolist()):
            dt = t - env.now
            if dt > 0:
                yield env.timeout(dt)
            if len(waiting) >= buffer:
                self.outcome[i] = VETOED  # Level-1 busy: the slot is not an accept
                self._count_done()
                continue
            waiting.append(i)
            self._assign()
            if self.overhead_ms > 0:
                self._overhead_pending += 1
                if self._overhead_wake is not None and not self._overhead_wake.triggered:
                    self._overhead_wake.succeed()

    def _assign(self) -> None:
        """Pair waiting accepts with free node slots (oldest first); each assigned event is
        built on its node and then waits there for a worker slot."""
        waiting, credits, env = self.waiting, self.node_credits, self.env
        while waiting and credits:
            i, node = waiting.popleft(), credits.popleft()
            self.node_of[i] = node
            trip = float(self.draws.assign_ms[i])  # ASSIGN to the readout, the fragments to the node
            arrived = env.now + trip
            self.assign_ms[i] = arrived - self.t_l1_ms[i]
            delay = trip + float(self.draws.build_ms[i])
            self.ready_ms[i] = env.now + delay
            store = self.node_queues[node]
            if delay > 0:
                env.timeout(delay).callbacks.append(lambda _ev, store=store, i=i: store.put(i))
            else:
                store.put(i)

    def _free_node_slot(self, i: int, node: int) -> None:
        """Event `i` is decided: its node slot goes back to the assignment service (once)."""
        if not self._slot_freed[i]:
            self._slot_freed[i] = True
            self.node_credits.append(node)
            self._assign()

    def _overhead(self):
        """The farm's own CPU per accepted event (readout, builder, collector) on the host's cores."""
        env = self.env
        while True:
            if not self._overhead_pending:
                self._overhead_wake = env.event()
                yield self._overhead_wake
                continue
            self._overhead_pending -= 1
            yield from self.host_cores.run(self._overhead_user, self.overhead_ms)

    def _cpu(self, ms: float, cpu: simpy.Resource | None, user: CpuUser | None = None):
        """One CPU step on the worker's core (when it has several slots) and a host core (shared host)."""
        if ms <= 0:
            return
        env, host = self.env, self.host_cores
        if cpu is None and host is None:
            yield env.timeout(ms)
        elif host is None:
            with cpu.request() as mine:
                yield mine
                yield env.timeout(ms)
        elif cpu is None:
            yield from host.run(user, ms)
        else:  # the worker's own core whole (one step at a time in the worker), the host's as it shares them
            with cpu.request() as mine:
                yield mine
                yield from host.run(user, ms)

    def _slot(self, w: int, cpu: simpy.Resource | None, breakers: dict[int, CircuitBreaker], user: CpuUser):
        node = w // self.spec.farm.workers_per_node
        env, d, get = self.env, self.draws, self.node_queues[node].get
        transfer, before, after = d.transfer_ms, d.cpu_before_ms, d.cpu_after_ms
        while True:
            i = yield get()
            self.queue_ms[i] = max(env.now - self.ready_ms[i], 0.0)
            self.worker_of[i] = w
            yield env.timeout(transfer[i])
            start = env.now  # the budget counts from here, as the worker's watch
            if self.idle_curve is not None:
                gap = 0.0 if self._busy[w] else start - self._idle_since[w]
                self.scale[i] = self.rate_scale * self.idle_curve.factor_at(gap) / self._row_factor[d.row[i]]
            scale = self.scale[i]
            self._busy[w] += 1
            soft, hard = start + self.soft_ms, start + self.budget_ms
            # the watchdog's forced decision at the hard budget frees the node slot then,
            # while the worker's slot stays busy until its step ends
            env.timeout(self.budget_ms).callbacks.append(lambda _ev, i=i, node=node: self._free_node_slot(i, node))
            left_early = False
            for model in MODELS:
                yield from self._cpu(before[model][i] * scale, cpu, user)
                if env.now >= soft:
                    left_early = True
                    break
                if d.called[model][i]:
                    path = yield from self._call(i, model, cpu, breakers, soft, user)
                    if path == EXPIRED or env.now >= soft:
                        left_early = True
                        break
            if not left_early:
                yield from self._cpu(after[i] * scale, cpu, user)
            end = env.now
            self._busy[w] -= 1
            if not self._busy[w]:
                self._idle_since[w] = end
            self.worker_ms[i] = end - start
            if end > hard:
                self.outcome[i], self.decided_ms[i] = TIMEOUT, hard  # the watchdog force-accepted it
            elif left_early or end >= soft:
                self.outcome[i], self.decided_ms[i] = TIMEOUT, end
            else:
                self.outcome[i], self.decided_ms[i] = self._base_outcome[i], end
            self._count_done()
            self._count_decided()
            self._free_node_slot(i, node)
            if self.outside_ms > 0:  # the worker's own CPU beyond its timed steps, on its core
                yield from self._cpu(self.outside_ms, cpu, user)
            if self.dispatch_ms > 0:  # the credit goes back with the result; the next event follows it
                yield env.timeout(self.dispatch_ms)

    def when_decided(self, n: int) -> simpy.Event:
        """An event that happens when the n-th event is decided (at once if it has been)."""
        event = self.env.event()
        if self.decided >= n:
            event.succeed()
        else:
            self._decided_waiters.setdefault(n, []).append(event)
        return event

    def _count_decided(self) -> None:
        self.decided += 1
        for event in self._decided_waiters.pop(self.decided, []):
            event.succeed()

    def _count_done(self) -> None:
        self.done += 1
        if self.done == self.spec.events:
            self.all_done.succeed()

    def _breaker(self, breakers: dict[int, CircuitBreaker], index: int) -> CircuitBreaker:
        b = breakers.get(index)
        if b is None:
            f = self.spec.farm
            b = breakers[index] = CircuitBreaker(f.breaker_failures, int(f.breaker_open_ms * NS_PER_MS))
        return b

    def _channel(self, i: int, index: int) -> Channel:
        channels = self.channels[self.worker_of[i]]
        c = channels.get(index)
        if c is None:
            c = channels[index] = Channel(self.backoff, self._channel_rng)
        return c

    def _pick(self, breakers: dict[int, CircuitBreaker], tried: set[int]) -> Server | None:
        """Least outstanding requests among the servers not tried whose breaker lets the call go."""
        now_ns = int(self.env.now * NS_PER_MS)
        for index in self.pool.in_order():
            if index not in tried and self._breaker(breakers, index).allow(now_ns):
                return self.servers[index]
        return None

    def _call(self, i: int, model: str, cpu: simpy.Resource | None, breakers: dict[int, CircuitBreaker], soft: float,
              user: CpuUser | None = None):
        """One model call with its deadline, failover and fallback; returns the path."""
        env, f = self.env, self.spec.farm
        start = env.now
        left = soft - start
        deadline_ms = min(f.timeout_ms, left)
        capped = left <= f.timeout_ms
        demand, size, net = self.draws.demand_ms[model][i] * self.scale[i], self.draws.size[model][i], self.net_ms[model][i]
        tried: set[int] = set()
        reason = 3  # breaker_open, unless a server is tried
        for _ in range(min(2, len(self.servers))):
            server = self._pick(breakers, tried)
            if server is None:
                break
            tried.add(server.index)
            breaker = self._breaker(breakers, server.index)
            channel = self._channel(i, server.index)
            req = Request(env, size, demand)
            if channel.usable(env.now, server.up_since_ms):
                server.submit(model, req)
            else:  # UNAVAILABLE at once: gRPC has not connected again yet
                self.unreachable_calls += 1
                req.done.succeed(False)
            wait = deadline_ms - (env.now - start) - net
            if not req.done.triggered:
                timer = env.timeout(max(wait, 0.0))
                yield req.done | timer
            now_ns = int(env.now * NS_PER_MS)
            opened = breaker.times_opened
            if req.done.triggered and not req.done.value:
                channel.lost(env.now)  # the server is gone: its connection with it
            if req.done.triggered and req.done.value:
                if net > 0:
                    yield env.timeout(net)
                breaker.record_success(now_ns)
                self.call_ms[model][i] = env.now - start
                self.path[model][i] = TRITON
                return TRITON
            breaker.record_failure(now_ns)
            self.breaker_opened += breaker.times_opened - opened
            if not req.done.triggered:  # the deadline passed: the client gives up (the server skips it if not started)
                req.cancelled = True
                reason = 1
                break
            reason = 2  # failed at once: try another server
            self.failovers += 1
        if reason == 1 and capped:
            self.call_ms[model][i] = env.now - start
            self.path[model][i] = EXPIRED
            return EXPIRED
        yield from self._cpu(demand * f.fallback_cpu_factor, cpu, user)
        self.call_ms[model][i] = env.now - start
        self.path[model][i] = FALLBACK
        if not self.reason[i]:
            self.reason[i] = reason
        return FALLBACK

    # -- running -----------------------------------------------------------------------------
    def run(self, progress: Callable[[float, int, int], None] | None = None, chunks: int = 100) -> None:
        """Run until every event is decided and nothing is left to happen. `progress(sim_s,
        decided, events)` is called about `chunks` times."""
        env = self.env
        step = max(self.t_l1_ms[-1] / chunks, 1.0)
        while not self.all_done.processed:
            try:
                env.run(until=self.all_done | env.timeout(step))
            except RuntimeError:  # nothing left to happen, yet slots without an outcome: reported as lost
                break
            if progress:
                progress(env.now / 1e3, self.done, self.spec.events)

    @property
    def pending(self) -> int:
        """Level-1 slots without an outcome (lost): 0 after `run`."""
        return int(np.count_nonzero(self.outcome == PENDING))
