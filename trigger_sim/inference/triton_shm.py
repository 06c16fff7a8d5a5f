"""Triton requests through system shared memory: the tensors are written into /dev/shm
regions registered with the server, and only their names and offsets cross gRPC.

For a client on the server's host (a loopback address). Which slot a request uses, and when
a slot may be used again after a failed call, is decided by `shm_pool.RegionPool` (plain
logic, tested directly); this module only creates, registers, writes and reads regions.
Region files are named `<prefix><n>`: the farm gives every worker a prefix of its own run
and removes whatever is left under it at the end (a worker killed mid-run cannot).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from trigger_sim import clock
from trigger_sim.inference.shm_pool import Plan, RegionPool

SHM_DIR = Path("/dev/shm")
DEFAULT_SLOTS = 3
DEFAULT_QUARANTINE_S = 10.0  # longer than the server could still work on an abandoned graph


class SharedMemoryTransport:
    def __init__(self, client: grpcclient.InferenceServerClient, prefix: str, slots: int = DEFAULT_SLOTS,
                 quarantine_s: float = DEFAULT_QUARANTINE_S, now_ns=clock.now_ns):
        """`prefix`: the start of every region's name, unique to this client (letters, digits, '_', '-', '.')."""
        self.client = client
        self.prefix = prefix
        self.pool = RegionPool(slots, int(quarantine_s * clock.NS_PER_S))
        self.now_ns = now_ns
        self.handles: dict[str, object] = {}  # region name -> tritonclient handle
        self.calls = 0  # requests sent through shared memory

    def names(self, slot: int) -> tuple[str, str]:
        return f"{self.prefix}{slot}_in", f"{self.prefix}{slot}_out"

    def acquire(self, in_bytes: int, out_bytes: int, timeout_s: float) -> Plan | None:
        """Reserve and prepare a slot for the request, or None (then send it in the gRPC message).

        Raises InferenceServerException when the server refuses a registration (the caller
        treats it as any failed call)."""
        plan = self.pool.acquire(self.now_ns(), in_bytes, out_bytes)
        if plan is None:
            return None
        try:
            self._prepare(plan, timeout_s)
        except Exception:
            self.pool.lost_regions(plan)
            self.pool.release(plan, self.now_ns(), ok=False)
            raise
        self.pool.prepared(plan)
        return plan

    def _prepare(self, plan: Plan, timeout_s: float) -> None:
        in_name, out_name = self.names(plan.slot)
        for name, size in ((in_name, plan.new_in_bytes), (out_name, plan.new_out_bytes)):
            if size:
                self._unregister(name)
                self._destroy(name)
                self.handles[name] = shm.create_shared_memory_region(name, f"/{name}", size)
        if plan.register:
            slot = self.pool.slots[plan.slot]
            for name, size in ((in_name, plan.new_in_bytes or slot.in_bytes), (out_name, plan.new_out_bytes or slot.out_bytes)):
                self._unregister(name)
                self.client.register_system_shared_memory(name, f"/{name}", size, client_timeout=timeout_s)

    def request(self, plan: Plan, arrays: Mapping[str, tuple[np.ndarray, str]], output_name: str,
                out_bytes: int) -> tuple[list[grpcclient.InferInput], list[grpcclient.InferRequestedOutput]]:
        """Write the inputs ({name: (contiguous array, Triton datatype)}) into the slot's input
        region and describe the request: inputs and output by region and offset."""
        in_name, out_name = self.names(plan.slot)
        ordered = list(arrays.items())
        shm.set_shared_memory_region(self.handles[in_name], [a for _, (a, _) in ordered])
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

    def read_output(self, plan: Plan, result: grpcclient.InferResult, output_name: str) -> np.ndarray | None:
        """The output tensor, copied out of the region (which the next request reuses)."""
        tensor = result.get_output(output_name)
        if tensor is None:
            return None
        shape = [int(d) for d in tensor.shape]
        _, out_name = self.names(plan.slot)
        return np.array(shm.get_contents_as_numpy(self.handles[out_name], np.float32, shape), copy=True)

    def release(self, plan: Plan, ok: bool) -> None:
        self.pool.release(plan, self.now_ns(), ok)

    def close(self) -> None:
        """Unregister (if the server still answers) and remove every region of this client."""
        for name in list(self.handles):
            self._unregister(name)
            self._destroy(name)

    def _unregister(self, name: str) -> None:
        with contextlib.suppress(InferenceServerException):
            self.client.unregister_system_shared_memory(name, client_timeout=2.0)

    def _destroy(self, name: str) -> None:
        handle = self.handles.pop(name, None)
        if handle is not None:
            with contextlib.suppress(shm.SharedMemoryException):
                shm.destroy_shared_memory_region(handle)


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
