"""Tests of trigger_sim.inference.shm_region, and that a client killed with regions in /dev/shm
leaves them to the farm's cleanup without any report from multiprocessing's resource tracker."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from trigger_sim.inference.shm_region import SHM_DIR, Region
from trigger_sim.inference.triton_shm import remove_regions

REPO_ROOT = Path(__file__).resolve().parents[3]


def fresh_prefix() -> str:
    return f"tsim_test_region_{uuid.uuid4().hex[:8]}_"


arrays = st.lists(hnp.arrays(st.sampled_from([np.float32, np.int32, np.int64, np.float64]),
                             hnp.array_shapes(min_dims=1, max_dims=3, max_side=20)), min_size=1, max_size=4)


@settings(max_examples=50, deadline=None)
@given(arrays)
def test_arrays_written_one_after_the_other_read_back_bit_for_bit(values):
    # sized to hold them exactly (up to 4 arrays of 20 x 20 x 20 eight-byte values: more than a fixed 64 kB)
    region = Region(f"{fresh_prefix()}0_in", max(sum(v.nbytes for v in values), 1))
    try:
        region.write(values)
        offset = 0
        for value in values:
            back = region.read(value.dtype, value.shape, offset)
            assert back.tobytes() == value.tobytes()
            offset += value.nbytes
    finally:
        region.destroy()
    assert not region.path.exists()


def test_a_region_is_a_dev_shm_file_of_its_size_that_the_server_opens_by_key():
    name = f"{fresh_prefix()}0_out"
    region = Region(name, 1 << 16)
    try:
        assert region.path == SHM_DIR / name and region.path.stat().st_size == 1 << 16
        assert region.key == f"/{name}"
        with pytest.raises(ValueError, match="do not fit"):
            region.write([np.zeros(1 << 15, np.float32)])
    finally:
        region.destroy()
    region.destroy()  # twice is harmless
    assert not region.path.exists()


CHILD = """
import os, signal, sys
import numpy as np
from trigger_sim import clock
from trigger_sim.inference.triton_shm import SharedMemoryTransport

class NoServer:  # the gRPC client's registration calls, answered at once
    def register_system_shared_memory(self, *args, **kwargs): pass
    def unregister_system_shared_memory(self, *args, **kwargs): pass

transport = SharedMemoryTransport(NoServer(), sys.argv[1])
plan = transport.acquire(1 << 16, 1 << 10, clock.now_ns() + 10 * clock.NS_PER_S)
transport.request(plan, {"x": (np.ones(1 << 14, np.float32), "FP32")}, "SCORE", 1 << 10)
print("regions made", flush=True)
if sys.argv[2] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""  # "exit": the process ends without closing the transport


@pytest.mark.parametrize("end", ["kill", "exit"])
def test_a_client_that_dies_with_regions_leaves_them_to_the_farm_without_tracker_warnings(end):
    prefix = fresh_prefix()
    try:
        child = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD), prefix, end], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=120)
        assert "regions made" in child.stdout, child.stderr
        assert child.returncode == (-9 if end == "kill" else 0)
        assert "resource_tracker" not in child.stderr and "leaked" not in child.stderr, child.stderr
        assert sorted(p.name for p in SHM_DIR.glob(prefix + "*")) == [f"{prefix}0_in", f"{prefix}0_out"]
        assert remove_regions(prefix) == 2  # the supervisor's cleanup
        assert not list(SHM_DIR.glob(prefix + "*"))
    finally:
        remove_regions(prefix)
