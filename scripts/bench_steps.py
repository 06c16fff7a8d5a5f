"""Per-event worker time broken down by HLT step, at pile-up 0, 60 and 200.

Simulates events at each pile-up, sends them through the readout format, and runs the full
HLT sequence on them as a worker does: with the models on a local Triton server (default),
or in-process with `--local`. Prints the median and p90 time of each step (ms) per pile-up,
with the hits, edges and tracks per event. A benchmark, not a test: the numbers depend on
the machine. With --track-builders walk,chains each event is decided once per track builder
([features] track_builder), alternately, so the builders are compared on the same events and
the same machine load.

    .venv/bin/python scripts/bench_steps.py [--events N] [--local] [--pileups 0,60,200] [--track-builders walk,chains] [--json PATH]
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


def bench(pileup: float, events: int, triton_url: str | None, builders: tuple[str, ...] = ("walk",)) -> list[dict]:
    """One row per track builder: step times of the same events, decided alternately."""
    config = with_overrides(FarmConfig(), run={"seed": SEED}, physics={"pileup_mean": pileup},
                            worker={"budget_ms": 60_000.0}, inference={"timeout_ms": 10_000.0})
    services = build_inference(config, triton_url)
    try:
        problem = prepare_inference(services)
        if problem:
            raise SystemExit(problem)
        menu = load_menu(config.menu)
        sequences = {b: HltSequence(with_overrides(config, features={"track_builder": b}), menu, services) for b in builders}
        frames = [[encode_fragment(f) for f in event_fragments(config, i, 0)] for i in range(events)]
        results: dict[str, list] = {b: [] for b in builders}
        for sequence in sequences.values():
            sequence.process(0, frames[0])  # first call: warm caches
        for i in range(events):
            for b in builders:
                results[b].append(sequences[b].process(i, frames[i]))
    finally:
        close_inference(services)  # the shared-memory regions go with the backends
    return [_row(pileup, events, b, results[b]) for b in builders]


def _row(pileup: float, events: int, builder: str, results: list) -> dict:
    steps = {}
    for step in (*STEPS, "worker_total"):
        values = [r.steps_ms[step] for r in results if step in r.steps_ms]
        steps[step] = {"p50": float(np.median(values)), "p90": float(np.percentile(values, 90))}
    return {
        "pileup": pileup, "track_builder": builder, "events": events, "steps_ms": steps,
        "hits": float(np.median([r.n_hits for r in results])), "edges": float(np.median([r.n_edges for r in results])),
        "tracks": float(np.median([r.n_tracks for r in results])),
        "paths": sorted({r.inference_path for r in results}), "outcomes": sorted({r.outcome for r in results}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=30)
    parser.add_argument("--pileups", default="0,60,200")
    parser.add_argument("--local", action="store_true", help="models in-process (no Triton server)")
    parser.add_argument("--track-builders", default="walk", help="comma-separated [features] track_builder values")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    builders = tuple(args.track_builders.split(","))
    warm_up()
    rows = []
    with contextlib.ExitStack() as stack:
        url = None
        if not args.local:
            url = stack.enter_context(TritonServer(MODEL_REPOSITORY)).grpc_url
        for pu in (float(p) for p in args.pileups.split(",")):
            rows.extend(bench(pu, args.events, url, builders))
    where = "in-process models" if args.local else "models on a local Triton server"
    print(f"per-event worker time by step, ms (median / p90 of {args.events} events; {where})")
    label = (lambda r: f"pile-up {r['pileup']:g} {r['track_builder']}") if len(builders) > 1 else (lambda r: f"pile-up {r['pileup']:g}")
    header = f"{'step':>16}" + "".join(f"{label(r):>22}" for r in rows)
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
