"""Smoke test of the benchmark suite: `scripts/bench.py --quick` runs every case and writes
its report. No figure is asserted (they depend on the machine), only that each case produced
numeric medians and that the shared-memory regions it created are gone."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from farm.server_device import probe_gpus
from trigger_sim.config import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

CASES = ("builder", "kernels", "inference", "farm", "memory", "failover", "overlap", "assignment")
SHM = Path("/dev/shm")


def _bench_regions() -> set[str]:
    return {p.name for pattern in ("bench_*", "tsim_bench_*") for p in SHM.glob(pattern)} if SHM.is_dir() else set()


def test_quick_suite_reports_every_case(tmp_path):
    regions_before = _bench_regions()
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "bench.py"), "--quick", "--out-dir", str(tmp_path)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=560)
    assert proc.returncode == 0, proc.stderr[-4000:]

    data = json.loads((tmp_path / "benchmarks.json").read_text())
    assert data["meta"]["quick"] is True
    assert data["meta"]["machine"]["cores"] >= 1
    for name in CASES:
        case = data["cases"][name]
        assert case["metrics"], f"{name}: no metrics"
        for key, m in case["metrics"].items():
            assert isinstance(m["median"], (int, float)) and math.isfinite(m["median"]), (name, key, m)
            assert m["n"] >= 1 and m["min"] <= m["median"] <= m["max"], (name, key, m)
        for target in case["targets"]:
            assert isinstance(target["met"], bool) and math.isfinite(target["measured"]), (name, target)
    targets = [t["name"] for name, case in data["cases"].items() if name != "failover" for t in case["targets"]]
    # builder, seven kernels, client path, shared memory, farm efficiency, overlap of event slots,
    # the assignment service's CPU per event and its growth with the nodes
    assert len(targets) == 14, targets
    # failover: client fallbacks, farm lost / fallbacks / restarts, and the perf_analyzer ratio where it is installed
    assert len(data["cases"]["failover"]["targets"]) in (4, 5), data["cases"]["failover"]["targets"]

    report = (tmp_path / "BENCHMARKS.md").read_text()
    for needle in ("scripts/bench.py --quick", "Machine:", "Date:", "## Targets"):
        assert needle in report
    for case in data["cases"].values():
        assert case["title"] in report
    assert _bench_regions() <= regions_before, "shared-memory regions left in /dev/shm"


def _bench(*args: str, timeout_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "bench.py"), *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout_s)


def test_gpu_suite_without_a_gpu_says_what_is_missing(tmp_path):
    if probe_gpus().count:
        pytest.skip("torch sees a GPU here")
    proc = _bench("--gpu", "--quick", "--out-dir", str(tmp_path), timeout_s=120)
    assert proc.returncode != 0
    assert probe_gpus().detail in proc.stderr and "--torch-on-cpu" in proc.stderr
    assert not list(tmp_path.iterdir())


def test_gpu_serving_case_with_the_torch_forward_on_the_cpu(tmp_path):
    """The GPU suite's side-by-side case, the torch forward on the CPU standing for the GPU."""
    pytest.importorskip("torch")
    regions_before = _bench_regions()
    proc = _bench("--gpu", "--torch-on-cpu", "--quick", "--only", "gpu_serving", "--out-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-4000:]
    case = json.loads((tmp_path / "benchmarks-gpu.json").read_text())["cases"]["gpu_serving"]
    for kind in ("edge_pu20", "edge_pu60", "edge_pu200", "jets"):
        for side in ("cpu", "gpu"):
            assert case["metrics"][f"{kind}_{side}_p50_ms"]["median"] > 0
        assert case["diagnostics"][f"{kind}_gpu_compute_infer_ms"] > 0
    report = (tmp_path / "BENCHMARKS-gpu.md").read_text()
    assert "the models on the CPU against the models on the torch forward on the CPU" in report
    assert _bench_regions() <= regions_before, "shared-memory regions left in /dev/shm"
