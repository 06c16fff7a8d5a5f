"""A remote backend over a pool of Triton servers: SONIC's retry chain within one deadline.

`PooledBackend` (one per model) asks the shared `ServerPool` which server takes the call,
sends it there, and when that server fails, sends it to another healthy server with what is
left of the deadline; when none is left (or no time), it raises, and the inference service
runs its local fallback. `infer` blocks; `submit` returns a future at once and follows the
same chain from the callbacks of its members' futures (members without `submit` run their
`infer` on a small thread pool). `PoolProber` is the thread that probes servers out of the
pool (their repository index: ready, and which models) so they rejoin when they are back.

A pool of one server behaves as a single client: the same deadline, the same errors.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient

from trigger_sim import clock
from trigger_sim.errors import InferenceError, InferenceTimeout, InferenceUnavailable, TriggerSimError
from trigger_sim.inference.deadline import left_s
from trigger_sim.inference.server_pool import ServerPool
from trigger_sim.log_once import OnceLog, describe

MIN_ATTEMPT_S = 0.0005  # below this a call cannot succeed: no attempt, the chain ends
PROBE_PERIOD_S = 0.1
PROBE_TIMEOUT_S = 0.5
REFRESH_S = 2.0  # the models of the servers in the pool are read again this often
SUBMIT_THREADS = 4  # for members without their own `submit`
log = logging.getLogger(__name__)


class PooledBackend:
    def __init__(self, model: str, members: Mapping[str, Any], pool: ServerPool,
                 now_ns: Callable[[], int] = clock.now_ns):
        """`members`: {address: that server's backend for `model`} (each with `infer`, maybe `submit`)."""
        self.model = model
        self.members = dict(members)
        self.pool = pool
        self.now_ns = now_ns
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._once = OnceLog(log)
        self.prober: "PoolProber | None" = None  # the worker's prober, stopped by close() (any backend may own it)

    @property
    def url(self) -> str:
        return ",".join(self.members)

    # -- the chain ---------------------------------------------------------------------
    def _next(self, tried: set[str], last: Exception | None, deadline_ns: int) -> tuple[str, float]:
        """The next server and the seconds left for it; raises when the chain ends."""
        address = self.pool.choose(self.model, tried)
        if address is None:
            if last is not None:
                raise last
            raise InferenceUnavailable(f"{self.model}: no healthy server ({self.pool.describe()})")
        left = left_s(deadline_ns, self.now_ns())
        if left < MIN_ATTEMPT_S:
            if last is not None:
                raise last
            raise InferenceTimeout(f"{self.model}: no time left for a call")
        return address, left

    def _failed(self, address: str, start_ns: int, err: BaseException) -> Exception:
        """Record a member's failure; the error to raise if the chain ends here."""
        self.pool.finish(address, False, self.now_ns() - start_ns, self.now_ns(), self.model)
        if isinstance(err, InferenceError):
            return err
        self._once.exception(err, f"inference client for {address} {self.model}")
        return InferenceUnavailable(f"{address} {self.model}: {describe(err)}")

    def infer(self, inputs: Any, timeout_s: float) -> np.ndarray:
        """Scores from the first server of the chain that answers within `timeout_s`."""
        deadline_ns = self.now_ns() + int(timeout_s * clock.NS_PER_S)
        tried: set[str] = set()
        last: Exception | None = None
        while True:
            address, left = self._next(tried, last, deadline_ns)
            tried.add(address)
            self.pool.begin(address, self.model)
            start = self.now_ns()
            try:
                out = self.members[address].infer(inputs, left)
            except Exception as err:
                last = self._failed(address, start, err)
                continue
            self.pool.finish(address, True, self.now_ns() - start, self.now_ns(), self.model)
            return out

    def submit(self, inputs: Any, timeout_s: float) -> concurrent.futures.Future:
        """A future of the scores (or of InferenceTimeout / InferenceError), resolved once,
        after the chain: a failed server's call is sent to the next with the time left."""
        outer: concurrent.futures.Future = concurrent.futures.Future()
        outer.set_running_or_notify_cancel()
        deadline_ns = self.now_ns() + int(timeout_s * clock.NS_PER_S)
        tried: set[str] = set()

        def attempt(last: Exception | None) -> None:
            try:
                address, left = self._next(tried, last, deadline_ns)
            except Exception as err:
                outer.set_exception(err)
                return
            tried.add(address)
            self.pool.begin(address, self.model)
            start = self.now_ns()
            try:
                inner = self._member_submit(address, inputs, left)
            except Exception as err:
                attempt(self._failed(address, start, err))
                return

            def done(f: concurrent.futures.Future) -> None:
                err = f.exception()
                if err is not None:
                    attempt(self._failed(address, start, err))
                    return
                self.pool.finish(address, True, self.now_ns() - start, self.now_ns(), self.model)
                outer.set_result(f.result())

            inner.add_done_callback(done)

        attempt(None)
        return outer

    def _member_submit(self, address: str, inputs: Any, timeout_s: float) -> concurrent.futures.Future:
        member = self.members[address]
        if hasattr(member, "submit"):
            return member.submit(inputs, timeout_s)
        with self._executor_lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(SUBMIT_THREADS, thread_name_prefix=f"pool-{self.model}")
        return self._executor.submit(member.infer, inputs, timeout_s)

    # -- what the inference service and the worker use -----------------------------------
    def check_model(self, timeout_s: float = 5.0) -> None:
        """At start-up: every server that has the model serves what the client sends. A
        server that cannot be asked is taken out (probed later); a mismatch, or no server
        reached at all, is an error."""
        mismatches, unreachable = [], []
        for address in self.pool.has_model(self.model):
            try:
                self.members[address].check_model(timeout_s)
            except TriggerSimError as err:
                (mismatches if "does not match" in str(err) else unreachable).append(str(err))
                self.pool.mark_down(address, self.now_ns())
        if mismatches or len(unreachable) == len(self.pool.has_model(self.model)):
            raise TriggerSimError("; ".join(mismatches + unreachable) or f"{self.model}: no server has it")

    def warm_up(self, inputs: Any, timeout_s: float) -> None:
        """One request to every healthy server with the model (not counted as calls), so no
        event pays a server's first-call cost; a server that fails it is taken out."""
        errors = []
        healthy = [a for a in self.pool.has_model(self.model) if self.pool.servers[a].healthy]
        for address in healthy:
            try:
                self.members[address].infer(inputs, timeout_s)
            except Exception as err:
                errors.append(f"{address}: {describe(err)}")
                self.pool.mark_down(address, self.now_ns())
        if len(errors) == len(healthy):
            raise InferenceUnavailable(f"{self.model}: no server answered a warm-up request ({'; '.join(errors) or self.pool.describe()})")

    def allow_in_flight(self, n: int) -> None:
        """Up to `n` requests may be in flight at once (event slots): any of them may go to
        any member, so every member that keeps resources per request keeps enough."""
        for member in self.members.values():
            reserve = getattr(member, "allow_in_flight", None)
            if reserve is not None:
                reserve(n)

    @property
    def shared_memory(self) -> Any:
        """The members' shared-memory transports as one (None when no member uses one)."""
        transports = [t for m in self.members.values() if (t := getattr(m, "shared_memory", None)) is not None]
        if not transports:
            return None
        return transports[0] if len(transports) == 1 else _TransportTotals(transports)

    def close(self) -> None:
        if self.prober is not None:
            self.prober.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        for member in self.members.values():
            with contextlib.suppress(Exception):
                member.close()


class _TransportTotals:
    """Several servers' shared-memory transports counted as one (the worker's counters)."""

    def __init__(self, transports: list[Any]):
        self.calls = sum(t.calls for t in transports)
        self.disabled = "; ".join(t.disabled for t in transports if t.disabled)
        self.pool = _RegionTotals(sum(t.pool.quarantined for t in transports), sum(t.pool.none_free for t in transports))


class _RegionTotals:
    def __init__(self, quarantined: int, none_free: int):
        self.quarantined = quarantined
        self.none_free = none_free


def repository_models(client: grpcclient.InferenceServerClient, timeout_s: float) -> list[str]:
    """The READY models in a server's repository index (raises when it cannot be asked)."""
    index = client.get_model_repository_index(as_json=True, client_timeout=timeout_s)
    return [m["name"] for m in index.get("models", []) if m.get("state") == "READY"]


def ready_models(client: grpcclient.InferenceServerClient, timeout_s: float) -> list[str]:
    """A probe: the server says it is ready (every model it was asked to load is loaded: a
    restarted server answers while its models still load), and its READY models; raises
    (InferenceUnavailable when it answers not ready) when it cannot take calls."""
    if not client.is_server_ready(client_timeout=timeout_s):
        raise InferenceUnavailable("server not ready")
    return repository_models(client, timeout_s)


class PoolProber(threading.Thread):
    """Learns each server's models at start, then every `period_s` probes the servers out of
    the pool (ready, and their repository index, within `timeout_s`); one that answers
    rejoins. Every `refresh_s` it reads the index of the servers in the pool again, so a
    model loaded later (explicit model control) gets calls."""

    def __init__(self, pool: ServerPool, client_options: Mapping[str, Any] | None = None,
                 period_s: float = PROBE_PERIOD_S, timeout_s: float = PROBE_TIMEOUT_S, refresh_s: float = REFRESH_S):
        super().__init__(name="server-prober", daemon=True)
        self.pool = pool
        self.period_s = period_s
        self.timeout_s = timeout_s
        self.refresh_s = refresh_s
        self.probes = 0
        self._clients = {a: grpcclient.InferenceServerClient(url=a, **dict(client_options or {})) for a in pool.servers}
        self._stop_event = threading.Event()
        self._once = OnceLog(log)

    def learn_models(self, timeout_s: float = 2.0) -> list[str]:
        """Ask every server for its models; one that does not answer is taken out. Returns the problems."""
        problems = []
        for address, client in self._clients.items():
            try:
                self.pool.set_models(address, repository_models(client, timeout_s))
            except Exception as err:
                self.pool.mark_down(address, clock.now_ns())
                problems.append(f"{address}: {describe(err)}")
        return problems

    def run(self) -> None:
        next_refresh = clock.now_ns() + int(self.refresh_s * clock.NS_PER_S)
        try:
            while not self._stop_event.wait(self.period_s):
                for address in self.pool.due_probes(clock.now_ns()):
                    self.probes += 1
                    try:
                        models = ready_models(self._clients[address], self.timeout_s)
                    except Exception as err:
                        self.pool.probe_done(address, False, clock.now_ns())
                        if not isinstance(err, (grpcclient.InferenceServerException, InferenceError)):
                            self._once.exception(err, f"probe of {address}")
                    else:
                        self.pool.probe_done(address, True, clock.now_ns(), models)
                if clock.now_ns() >= next_refresh:
                    next_refresh = clock.now_ns() + int(self.refresh_s * clock.NS_PER_S)
                    self._refresh()
        finally:
            for client in self._clients.values():
                with contextlib.suppress(Exception):
                    client.close()

    def _refresh(self) -> None:
        """The models of the servers in the pool, read again (a failure here is not the
        server's: its calls decide its health)."""
        for address, client in self._clients.items():
            if self.pool.servers[address].healthy:
                with contextlib.suppress(Exception):
                    self.pool.set_models(address, repository_models(client, self.timeout_s))

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=2.0)
        else:
            for client in self._clients.values():
                with contextlib.suppress(Exception):
                    client.close()
