"""Inference servers in the model (SimPy): per model a dynamic batcher feeding its instances,
service time from the server kind's curve, kills and restarts, and the count of outstanding
requests the pool balances on.

A request's `done` event succeeds with True (answered) or False (failed: the server died or
was down when called, as a refused connection fails at once). A request whose client gave up
before its batch started is skipped (the real models skip requests already cancelled).
"""

from __future__ import annotations

import math
from collections import deque

import simpy

from trigger_sim.planning.calibration import ModelCurve, ServerKind
from trigger_sim.planning.cores import Cores, CpuUser


class Request:
    __slots__ = ("size", "demand_ms", "done", "cancelled", "queued_at", "server")

    def __init__(self, env: simpy.Environment, size: float, demand_ms: float):
        self.size = size
        self.demand_ms = demand_ms
        self.done = env.event()
        self.cancelled = False
        self.queued_at = env.now
        self.server: Server | None = None


class ModelQueue:
    """One model on one server: waiting requests and `instances` executors."""

    def __init__(self, env: simpy.Environment, server: Server, curve: ModelCurve, host_cores: Cores | None):
        self.env, self.server, self.curve, self.host_cores = env, server, curve, host_cores
        self.waiting: deque[Request] = deque()
        self.running: set[Request] = set()
        self.idle: list[simpy.Event] = []
        self.busy_ms = 0.0  # instance time spent executing batches
        self.busy_offered_ms = 0.0  # of it, before the server's `offered_until_ms`
        self.executions = 0
        self.batched_requests = 0
        self.max_batch = max(1, curve.max_batch)
        self.preferred = sorted(b for b in curve.preferred_batch if 1 <= b <= self.max_batch)
        for _ in range(curve.instances):
            env.process(self._instance())

    def submit(self, req: Request) -> None:
        self.waiting.append(req)
        if self.idle:
            self.idle.pop().succeed()

    def fail_all(self) -> None:
        """The server died: every waiting and running request fails now."""
        for req in (*self.waiting, *self.running):
            if not req.done.triggered:
                req.done.succeed(False)
        self.waiting.clear()
        self.running = set()

    def _take_batch(self) -> list[Request]:
        live = self.waiting
        while live and live[0].cancelled:  # the client gave up before the batch started: skipped
            live.popleft()
            self.server.adjust(-1)
        n = min(len(live), self.max_batch)
        if self.preferred and n > 1:
            fits = [b for b in self.preferred if b <= n]
            n = fits[-1] if fits else n
        batch = []
        while live and len(batch) < n:
            req = live.popleft()
            if req.cancelled:
                self.server.adjust(-1)
                continue
            batch.append(req)
        return batch

    def _instance(self):
        env, curve = self.env, self.curve
        user = CpuUser()  # this instance's thread on the host's cores
        delay_ms = curve.queue_delay_ms if self.max_batch > 1 else 0.0
        while True:
            if not self.waiting or not self.server.alive:
                wake = env.event()
                self.idle.append(wake)
                yield wake
                continue
            if delay_ms > 0 and len(self.waiting) < self.max_batch and (not self.preferred or len(self.waiting) < self.preferred[-1]):
                wait = self.waiting[0].queued_at + delay_ms - env.now
                if wait > 0:
                    yield env.timeout(wait)
            generation = self.server.generation
            batch = self._take_batch()
            if not batch:
                continue
            self.running.update(batch)
            t_ms = curve.batch_ms([r.size for r in batch], [r.demand_ms for r in batch])
            if self.host_cores is not None and curve.cpu_share > 0:
                yield from self.host_cores.run(user, t_ms * curve.cpu_share)
                if curve.cpu_share < 1:
                    yield env.timeout(t_ms * (1 - curve.cpu_share))
            else:
                yield env.timeout(t_ms)
            if generation != self.server.generation:
                continue  # killed meanwhile: its requests already failed
            self.busy_ms += t_ms
            # the part of this execution before the last arrival: utilisation while the load was offered
            self.busy_offered_ms += max(0.0, min(env.now, self.server.offered_until_ms) - max(env.now - t_ms, 0.0))
            self.executions += 1
            self.batched_requests += len(batch)
            self.server.adjust(-len(batch))
            for req in batch:
                if not req.done.triggered:
                    req.done.succeed(True)
            self.running.difference_update(batch)


class Server:
    """One inference server: its models' queues, whether it is up, requests outstanding."""

    def __init__(self, env: simpy.Environment, index: int, kind: ServerKind, host_cores: Cores | None,
                 pool: LeastOutstanding | None = None):
        self.env, self.index, self.pool = env, index, pool
        self.alive = True
        self.up_since_ms: float | None = 0.0  # when it last came up; None while it is down
        self.restarts_ms: list[float] = []  # how long each restart took (kill to back)
        self.generation = 0  # +1 per kill: a batch running across a kill is not answered
        self.outstanding = 0
        self.failed_requests = 0
        self.offered_until_ms = float("inf")  # the last Level-1 arrival: utilisation is measured up to it
        self.queues = {m: ModelQueue(env, self, c, host_cores) for m, c in kind.models.items()}

    def submit(self, model: str, req: Request) -> None:
        req.server = self
        if not self.alive:
            self.failed_requests += 1
            req.done.succeed(False)
            return
        self.adjust(1)
        self.queues[model].submit(req)

    def adjust(self, delta: int) -> None:
        old = self.outstanding
        self.outstanding = old + delta
        if self.pool is not None:
            self.pool.moved(self.index, old, self.outstanding)

    def kill(self) -> None:
        self.alive = False
        self.up_since_ms = None
        self.generation += 1
        for q in self.queues.values():
            self.failed_requests += len(q.waiting) + len(q.running)
            q.fail_all()
        self.adjust(-self.outstanding)

    def restart(self) -> None:
        self.alive = True
        self.up_since_ms = self.env.now
        for q in self.queues.values():
            while q.idle:
                q.idle.pop().succeed()


RESTART_BURST_MS = 5.0  # a restarting server's CPU comes in bursts of this length (its threads loading models)


def kill_schedule(env: simpy.Environment, server: Server, at_s: float, restart_s: float,
                  cores: Cores | None = None, restart_cpu_cores: float = 0.0, after: simpy.Event | None = None,
                  restart_cpu_s: float = 0.0, restart_processes: int = 0):
    """A SimPy process: kill `server` at `at_s` (ms clock), or when `after` happens if that
    is later, and bring it back. On a shared host (`cores`), with `restart_processes` > 0,
    that many processes share `restart_cpu_s` of CPU, in bursts of RESTART_BURST_MS as the
    cores allow, and the server is back when all are done and `restart_s` has passed;
    otherwise it is back `restart_s` later, its restart taking `restart_cpu_cores` of CPU on
    average meanwhile (as threads loading models, paced over the restart)."""
    yield env.timeout(at_s * 1e3)
    if after is not None:
        yield after
    server.kill()
    if restart_s >= 1e8:
        return
    start = env.now
    if cores is not None and restart_processes > 0 and restart_cpu_s > 0:
        each_ms = restart_cpu_s * 1e3 / restart_processes
        yield env.all_of([env.process(_load_as_allowed(cores, each_ms)) for _ in range(restart_processes)])
        if env.now - start < restart_s * 1e3:
            yield env.timeout(restart_s * 1e3 - (env.now - start))
    else:
        if cores is not None and restart_cpu_cores > 0:
            threads = max(1, math.ceil(restart_cpu_cores))
            for _ in range(threads):
                env.process(_restart_load(env, cores, restart_s * 1e3 * restart_cpu_cores / threads, restart_s * 1e3))
        yield env.timeout(restart_s * 1e3)
    server.restart()
    server.restarts_ms.append(env.now - start)


def _load_as_allowed(cores: Cores, cpu_ms: float):
    """One loading process: `cpu_ms` of CPU in bursts, each as soon as the cores give it."""
    user = CpuUser()
    while cpu_ms > 0:
        burst = min(RESTART_BURST_MS, cpu_ms)
        yield from cores.run(user, burst)
        cpu_ms -= burst


def _restart_load(env: simpy.Environment, cores: Cores, cpu_ms: float, span_ms: float):
    """One loading thread: `cpu_ms` of CPU spread evenly over `span_ms` (a burst, then the
    rest of its share of the span off-core), ending at the restart at the latest."""
    user, start = CpuUser(), env.now
    bursts = max(1, int(cpu_ms / RESTART_BURST_MS))
    burst_ms, period_ms = cpu_ms / bursts, span_ms / bursts
    for k in range(bursts):
        if env.now >= start + span_ms:
            return  # the server is back: loading is over
        yield from cores.run(user, burst_ms)
        due = start + (k + 1) * period_ms
        if env.now < due:
            yield env.timeout(due - env.now)


class LeastOutstanding:
    """Server indices bucketed by their count of outstanding requests, so the least loaded
    are found without scanning the pool (counts move by one request at a time). Plain logic."""

    def __init__(self, n_servers: int):
        self.buckets: list[dict[int, None]] = [dict.fromkeys(range(n_servers))]  # insertion-ordered sets

    def moved(self, index: int, old: int, new: int) -> None:
        del self.buckets[old][index]
        while len(self.buckets) <= new:
            self.buckets.append({})
        self.buckets[new][index] = None

    def in_order(self):
        """Server indices from the least outstanding requests up (ties: the longest at that count first)."""
        for bucket in self.buckets:
            yield from bucket  # the caller stops at its first pick, before any count moves
