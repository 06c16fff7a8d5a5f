"""A figure from a run's per-event table (events.parquet): each event's total latency over
the run by outcome, and the latency distribution of the steps that dominate it.

    .venv/bin/python scripts/plot_events.py runs/run000001-.../events.parquet --out docs/events.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

STEPS = ("assign", "build", "queue", "transfer", "graph", "edge_classifier", "jet_tagger", "worker_total", "total")
COLOURS = {"accepted": "tab:green", "rejected": "tab:grey", "debug": "tab:red"}


def plot(df: pd.DataFrame, out: Path, budget_ms: float | None = None) -> None:
    t0 = df["l1_time_ns"].min()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    for outcome, colour in COLOURS.items():
        sel = df[df["outcome"] == outcome]
        if len(sel):
            ax1.scatter((sel["decided_ns"] - t0) / 1e9, sel["total_ms"], s=5, c=colour, label=f"{outcome} ({len(sel)})")
    if budget_ms:
        ax1.axhline(budget_ms, color="red", lw=1, ls="--", label=f"budget {budget_ms:g} ms")
    ax1.set_yscale("log")
    ax1.set_xlabel("decision time from the first Level-1 accept (s)")
    ax1.set_ylabel("total latency, Level-1 time to decision (ms)")
    ax1.set_title(f"{len(df)} events: latency per event over the run")
    ax1.legend(fontsize=8, loc="upper left")
    steps = [s for s in STEPS if f"{s}_ms" in df and df[f"{s}_ms"].notna().any()]
    data = [df[f"{s}_ms"].dropna().clip(lower=1e-3).to_numpy() for s in steps]
    ax2.boxplot(data, whis=(1, 99), showfliers=False, orientation="horizontal")
    ax2.set_yticks(range(1, len(steps) + 1), steps)
    for i, d in enumerate(data, start=1):
        ax2.plot(np.percentile(d, 99), i, "k|", ms=12)
    ax2.set_xscale("log")
    ax2.set_xlabel("ms (box: quartiles, whiskers: 1st and 99th percentile)")
    ax2.set_title("latency per step")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", type=Path, help="events.parquet of a run")
    parser.add_argument("--out", type=Path, default=Path("docs/events.png"))
    parser.add_argument("--budget-ms", type=float, default=500.0, help="the event budget, drawn as a line (0: none)")
    args = parser.parse_args()
    plot(pd.read_parquet(args.table), args.out, args.budget_ms or None)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
