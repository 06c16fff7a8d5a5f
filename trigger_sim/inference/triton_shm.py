"""Triton requests through system shared memory: the tensors are written into /dev/shm
regions registered with the server, and only their names and offsets cross gRPC.

For a client on the server's host (a loopback address). Which slot a request uses, and when
a slot may be used again after a failed call, is decided by `shm_pool.RegionPool` (plain
logic, tested directly); this module only creates, registers, writes and reads regions,
every server call within the request's deadline. Region files are named `<prefix><n>_in`
and `_out`: the farm gives every worker a prefix of its own run and removes whatever is
left under it at the end (a worker killed mid-run cannot). The regions are plain /dev/shm
files (`shm_region`), unknown to multiprocessing's resource tracker, so a killed worker
leaves no tracker warnings behind: that cleanup is the farm's alone. An asynchronous call
releases its slot from the gRPC callback's thread: the pool's bookkeeping is under a lock.

A server that cannot see this host's /dev/shm (in a container, say, behind a published
loopback port) refuses every registration: after `MAX_REGISTRATION_FAILURES` refusals in a
row while the server otherwise answers, the transport turns itself off and requests go in
the gRPC message.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Mapping

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException, triton_to_np_dtype

from trigger_sim import clock
from trigger_sim.errors import InferenceUnavailable
from trigger_sim.inference.deadline import require_left_s
from trigger_sim.inference.shm_pool import Plan, RegionPool
from trigger_sim.inference.shm_region import SHM_DIR, Region

DEFAULT_SLOTS = 3
DEFAULT_QUARANTINE_S = 10.0  # longer than the server could still work on an abandoned graph
MAX_REGISTRATION_FAILURES = 3
CLOSE_TIMEOUT_S = 2.0


class SharedMemoryTransport:
    def __init__(self, client: grpcclient.InferenceServerClient, prefix: str, slots: int = DEFAULT_SLOTS,
                 quarantine_s: float = DEFAULT_QUARANTINE_S, now_ns=clock.now_ns):
        """`prefix`: the start of every region's name, unique to this client (letters, digits, '_', '-', '.')."""
        self.client = client
        self.prefix = prefix
        self.pool = RegionPool(slots, int(quarantine_s * clock.NS_PER_S))
        self.now_ns = now_ns
        self.handles: dict[str, Region] = {}  # region name -> its mapping in this process
        self.registered: set[str] = set()  # names the server holds, as far as this client knows
        self.calls = 0  # requests sent through shared memory
        self.registration_failures = 0  # in a row
        self.disabled = ""  # why the transport turned itself off ("" while on)
        self._lock = threading.Lock()  # the pool: acquired on the caller's thread, released on gRPC's

    def ensure_slots(self, n: int) -> None:
        """Keep at least `n` slots (one per request in flight, and spares)."""
        with self._lock:
            self.pool.ensure_slots(n)

    def names(self, slot: int) -> tuple[str, str]:
        return f"{self.prefix}{slot}_in", f"{self.prefix}{slot}_out"

    def _left_s(self, deadline_ns: int) -> float:
        return require_left_s(deadline_ns, self.now_ns(), f"{self.prefix}: preparing shared memory")

    def acquire(self, in_bytes: int, out_bytes: int, deadline_ns: int) -> Plan | None:
        """Reserve and prepare a slot for the request, or None (then send it in the gRPC message).

        Raises InferenceServerException when the server refuses a registration, OSError
        when /dev/shm refuses a region, InferenceTimeout when the
        deadline passes; the slot is then given up as failed."""
        if self.disabled:
            return None
        with self._lock:
            plan = self.pool.acquire(self.now_ns(), in_bytes, out_bytes)
        if plan is None:
            return None
        try:
            self._prepare(plan, deadline_ns)
        except BaseException:
            with self._lock:
                self.pool.lost_regions(plan)
                self.pool.release(plan, self.now_ns(), ok=False)
            raise
        with self._lock:
            self.pool.prepared(plan)
        self.registration_failures = 0
        return plan

    def _prepare(self, plan: Plan, deadline_ns: int) -> None:
        in_name, out_name = self.names(plan.slot)
        for name, size in ((in_name, plan.new_in_bytes), (out_name, plan.new_out_bytes)):
            if size:
                self._unregister(name, self._left_s(deadline_ns))
                self._destroy(name)
                self.handles[name] = Region(name, size)
        if plan.register:
            slot = self.pool.slots[plan.slot]
            for name, size in ((in_name, plan.new_in_bytes or slot.in_bytes), (out_name, plan.new_out_bytes or slot.out_bytes)):
                self._unregister(name, self._left_s(deadline_ns))
                self.client.register_system_shared_memory(name, self.handles[name].key, size, client_timeout=self._left_s(deadline_ns))
                self.registered.add(name)

    def registration_refused(self) -> None:
        """The server refused a registration (the caller sent the request in the message)."""
        self.registration_failures += 1

    def request_answered_without(self) -> None:
        """A request sent in the gRPC message was answered after registrations were refused:
        the server is up but cannot use our regions; after a few, stop trying."""
        if self.registration_failures >= MAX_REGISTRATION_FAILURES and not self.disabled:
            self.disabled = (f"the server refused {self.registration_failures} shared-memory registrations in a row "
                             "while answering requests: it cannot see this host's /dev/shm")

    def request(self, plan: Plan, arrays: Mapping[str, tuple[np.ndarray, str]], output_name: str,
                out_bytes: int) -> tuple[list[grpcclient.InferInput], list[grpcclient.InferRequestedOutput]]:
        """Write the inputs ({name: (contiguous array, Triton datatype)}) into the slot's input
        region and describe the request: inputs and output by region and offset."""
        in_name, out_name = self.names(plan.slot)
        ordered = list(arrays.items())
        self.handles[in_name].write([a for _, (a, _) in ordered])
        inputs, offset = [], 0
        for name, (array, datatype) in ordered:
            tensor = grpcclient.InferInput(name, list(array.shape), datatype)
            tensor.set_shared_memory(in_name, array.nbytes, offset)
            inputs.append(tensor)
            offset += array.nbytes
        output = grpcclient.InferRequestedOutput(output_name)
        output.set_shared_memory(out_name, max(out_bytes, 1))
        self.calls += 1
        return inputs, [output]

    def read_output(self, plan: Plan, result: grpcclient.InferResult, output_name: str) -> np.ndarray:
        """The output tensor, copied out of the region (which the next request reuses)."""
        tensor = result.get_output(output_name)
        if tensor is None:
            raise InferenceUnavailable(f"response has no output '{output_name}'")
        shape = [int(d) for d in tensor.shape]
        dtype = np.dtype(triton_to_np_dtype(tensor.datatype))
        n_bytes = math.prod(shape) * dtype.itemsize
        _, out_name = self.names(plan.slot)
        if n_bytes > self.pool.slots[plan.slot].out_bytes:
            raise InferenceUnavailable(f"output '{output_name}' of {n_bytes} bytes does not fit its region "
                                       f"({self.pool.slots[plan.slot].out_bytes} bytes)")
        return self.handles[out_name].read(dtype, shape)

    def release(self, plan: Plan, ok: bool) -> None:
        with self._lock:
            self.pool.release(plan, self.now_ns(), ok)

    def close(self) -> None:
        """Unregister (if the server still answers) and remove every region of this client."""
        for name in list(self.handles):
            self._unregister(name, CLOSE_TIMEOUT_S)
            self._destroy(name)

    def _unregister(self, name: str, timeout_s: float) -> None:
        if name not in self.registered:
            return
        self.registered.discard(name)
        with contextlib.suppress(InferenceServerException):
            self.client.unregister_system_shared_memory(name, client_timeout=timeout_s)

    def _destroy(self, name: str) -> None:
        region = self.handles.pop(name, None)
        if region is not None:
            with contextlib.suppress(OSError):
                region.destroy()


def remove_regions(prefix: str) -> int:
    """Remove region files left under `prefix` (by a client that was killed); returns how many."""
    if not prefix:
        return 0
    removed = 0
    for path in SHM_DIR.glob(prefix + "*"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed


def unregister_regions(url: str, prefix: str, client_options: Mapping | None = None, timeout_s: float = CLOSE_TIMEOUT_S) -> int:
    """Unregister from the server every region named `prefix...` (those of killed clients,
    which a server that keeps running would hold mapped); returns how many. Best effort."""
    if not prefix:
        return 0
    done = 0
    try:
        client = grpcclient.InferenceServerClient(url=url, **dict(client_options or {}))
    except Exception:  # a client that cannot be made (TLS files gone): nothing to clean
        return 0
    try:
        status = client.get_system_shared_memory_status(as_json=True, client_timeout=timeout_s).get("regions", {})
        names = list(status) if isinstance(status, dict) else [r.get("name", "") for r in status]
        for name in names:
            if name.startswith(prefix):
                client.unregister_system_shared_memory(name, client_timeout=timeout_s)
                done += 1
    except InferenceServerException:
        pass  # the server is gone: so are its registrations
    finally:
        client.close()
    return done
