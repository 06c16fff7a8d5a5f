"""SONIC's ProtoDUNE result with the capacity model: how many CPU threads one GPU serves.

SONIC (arXiv:2009.04509, doi 10.3389/fdata.2020.604083) ran ProtoDUNE-SP reconstruction with
its CNN (EmTrackMichelId) as a service on T4 GPUs and found one GPU serving 68 CPU threads.
The parameters below are taken from the paper as recalled (no access to the text here);
those marked "unsure" should be checked against it:

- per event, CPU only: ~330 s in total, ~220 s of it the ML module (the paper's 17x on the
  ML step and 2.7x in total follow from these with the next line: 220/13 = 16.9, 330/123 = 2.7);
- per event, with the GPU as a service: the ML module ~13 s, the total ~123 s;
- GPU time per event ~1.8 s: ~55,000 patches of 48 x 48 per event (unsure) at ~30,000
  patches per second on one T4 (unsure).

The model: N worker threads (1 slot each, one core each), each event 110 s of CPU outside the
ML step, then one call to a pool of one GPU that holds it 1.8 s (one execution at a time),
the rest of the 13 s unloaded ML time (11.2 s: preparing patches, sending ~0.5 GB, reading
back) spent outside the GPU. Level-1 is replaced by a queue that never empties (arrivals at
twice the farm's capacity; excess vetoed), so the threads are always busy, as in a batch
job. The figure: events per second against N, and the N at which the GPU saturates.

    .venv/bin/python scripts/sonic_protodune_check.py [--out docs/plan/sonic_protodune.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trigger_sim.planning.calibration import CPU_STEPS, MODELS, Calibration, ModelCurve, ServerKind  # noqa: E402
from trigger_sim.planning.model_summary import simulate  # noqa: E402
from trigger_sim.planning.spec import ArrivalSpec, FarmSpec, PlanSpec  # noqa: E402

NON_ML_CPU_S = 330.0 - 220.0  # per event, CPU outside the ML module
ML_REMOTE_S = 13.0  # per event, the ML module with the GPU as a service (unloaded)
GPU_S = 1.8  # per event, GPU busy time (55,000 patches / 30,000 per s: unsure)
PAPER_THREADS_PER_GPU = 68


def calibration() -> Calibration:
    """One event kind: all the non-ML CPU before the one model call (the 'edge_classifier' slot)."""
    events = {"build": np.zeros(1), "transfer": np.zeros(1)}
    for s in CPU_STEPS:
        events[s] = np.zeros(1)
    events["graph"] = np.array([NON_ML_CPU_S * 1e3])
    for m in MODELS:
        events[f"{m}_demand"] = np.array([GPU_S * 1e3 if m == "edge_classifier" else 0.0])
        events[f"{m}_size"] = np.zeros(1)
        events[f"{m}_called"] = np.array([m == "edge_classifier"])
    events["outcome"] = np.zeros(1, np.int8)
    curve = ModelCurve(instances=1, fixed_ms=GPU_S * 1e3)
    return Calibration("sonic-protodune", {"source": "arXiv:2009.04509 as recalled; see scripts/sonic_protodune_check.py"},
                       events, {"t4": ServerKind({m: curve for m in MODELS}, "one T4, one execution at a time")})


def throughput(threads: int, events: int = 3000) -> dict:
    capacity_hz = min(threads / (NON_ML_CPU_S + ML_REMOTE_S), 1 / GPU_S)
    farm = FarmSpec(workers_per_node=threads, node_waiting_per_worker=0, servers=1, readout_buffer_events=threads, budget_ms=1e9, timeout_ms=1e9,
                    network_rtt_ms=(ML_REMOTE_S - GPU_S) * 1e3)
    s = simulate(PlanSpec(ArrivalSpec(rate_hz=2 * capacity_hz, pattern="constant"), farm, events=events, seed=1), calibration())
    decided = s["events"]["accepted"] + s["events"]["rejected"]
    return {"threads": threads, "events_per_s": s["throughput"]["decided_per_s"], "decided": decided,
            "ml_step_mean_s": s["latency_ms"]["edge_classifier"]["mean"] / 1e3,
            "gpu_utilisation": s["model"]["servers"][0]["models"]["edge_classifier"]["utilisation"]}


def main() -> int:
    ap = argparse.ArgumentParser(description="SONIC ProtoDUNE: CPU threads per GPU with the capacity model")
    ap.add_argument("--out", default="docs/plan/sonic_protodune.json")
    args = ap.parse_args()
    rows = [throughput(n) for n in (10, 20, 40, 50, 60, 65, 68, 70, 75, 80, 100, 140)]
    plateau = 1 / GPU_S
    knee = next(r["threads"] for r in rows if r["events_per_s"] >= 0.95 * plateau)
    print(f"{'threads':>8} {'events/s':>9} {'ML step s':>10} {'GPU busy':>9}")
    for r in rows:
        print(f"{r['threads']:>8} {r['events_per_s']:>9.3f} {r['ml_step_mean_s']:>10.1f} {100 * r['gpu_utilisation']:>8.0f} %")
    ideal = (NON_ML_CPU_S + ML_REMOTE_S) / GPU_S
    print(f"model: the GPU reaches 95 % of its {plateau:.3f} events/s at {knee} threads "
          f"(saturation point (110 s + 13 s) / 1.8 s = {ideal:.0f} threads); paper: 1 GPU per {PAPER_THREADS_PER_GPU} threads")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"parameters": {"non_ml_cpu_s": NON_ML_CPU_S, "ml_remote_s": ML_REMOTE_S, "gpu_s": GPU_S},
                                          "rows": rows, "model_threads_at_95pct": knee, "saturation_threads": ideal,
                                          "paper_threads_per_gpu": PAPER_THREADS_PER_GPU}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
