"""Per-event worker time broken down by HLT step, at pile-up 0, 60 and 200.

Simulates events at each pile-up, sends them through the readout format, and runs the full
HLT sequence on them as a worker does: with the models on a local Triton server (default),
or in-process with `--local`. Prints the median and p90 time of each step (ms) per pile-up,
with the hits, edges and tracks per event. A benchmark, not a test: the numbers depend on
the machine.

    .venv/bin/python scripts/bench_steps.py [--events N] [--local] [--pileups 0,60,200] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from farm.triton_server import TritonServer  # noqa: E402
from trigger_sim.inference.factory import build_inference, close_inference, prepare_inference  # noqa: E402
from trigger_sim.config import MODEL_REPOSITORY, FarmConfig, with_overrides  # noqa: E402
from trigger_sim.hlt.sequence import STEPS, HltSequence  # noqa: E402
from trigger_sim.kernels import warm_up  # noqa: E402
from trigger_sim.menu import load_menu  # noqa: E402
from trigger_sim.simulation import event_fragments  # noqa: E402
from trigger_sim.wire import encode_fragment  # noqa: E402

SEED = 5150


def bench(pileup: float, events: int, triton_url: str | None) -> dict:
    config = with_overrides(FarmConfig(), run={"seed": SEED}, physics={"pileup_mean": pileup},
                            worker={"budget_ms": 60_000.0}, inference={"timeout_ms": 10_000.0})
    services = build_inference(config, triton_url)
    try:
        problem = prepare_inference(services)
        if problem:
            raise SystemExit(problem)
        sequence = HltSequence(config, load_menu(config.menu), services)
        frames = [[encode_fragment(f) for f in event_fragments(config, i, 0)] for i in range(events)]
        sequence.process(0, frames[0])  # first call: warm caches
        results = [sequence.process(i, frames[i]) for i in range(events)]
    finally:
        close_inference(services)  # the shared-memory regions go with the backends
    steps = {}
    for step in (*STEPS, "worker_total"):
        values = [r.steps_ms[step] for r in results if step in r.steps_ms]
        steps[step] = {"p50": float(np.median(values)), "p90": float(np.percentile(values, 90))}
    return {
        "pileup": pileup, "events": events, "steps_ms": steps,
        "hits": float(np.median([r.n_hits for r in results])), "edges": float(np.median([r.n_edges for r in results])),
        "tracks": float(np.median([r.n_tracks for r in results])),
        "paths": sorted({r.inference_path for r in results}), "outcomes": sorted({r.outcome for r in results}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=30)
    parser.add_argument("--pileups", default="0,60,200")
    parser.add_argument("--local", action="store_true", help="models in-process (no Triton server)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    warm_up()
    rows = []
    with contextlib.ExitStack() as stack:
        url = None
        if not args.local:
            url = stack.enter_context(TritonServer(MODEL_REPOSITORY)).grpc_url
        for pu in (float(p) for p in args.pileups.split(",")):
            rows.append(bench(pu, args.events, url))
    where = "in-process models" if args.local else "models on a local Triton server"
    print(f"per-event worker time by step, ms (median / p90 of {args.events} events; {where})")
    header = f"{'step':>16}" + "".join(f"{'pile-up ' + format(r['pileup'], 'g'):>22}" for r in rows)
    print(header)
    for step in (*STEPS, "worker_total"):
        print(f"{step:>16}" + "".join(f"{r['steps_ms'][step]['p50']:>12.2f} / {r['steps_ms'][step]['p90']:<7.2f}" for r in rows))
    for key in ("hits", "edges", "tracks"):
        print(f"{key + ' (median)':>16}" + "".join(f"{r[key]:>22.0f}" for r in rows))
    print(f"{'inference path':>16}" + "".join(f"{','.join(r['paths']):>22}" for r in rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
