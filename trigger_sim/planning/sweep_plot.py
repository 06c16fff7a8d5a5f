"""A nodes x servers sweep written out: sweep.json, sweep.csv and sweep.png (p99 per cell,
the cells that sustain the rate marked)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


def write_sweep(rows: list[dict[str, Any]], meta: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "sweep.json", out_dir / "sweep.csv", out_dir / "sweep.png"]
    paths[0].write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    with open(paths[1], "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, meta, paths[2])
    return paths


def plot(rows: list[dict[str, Any]], meta: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nodes = sorted({r["nodes"] for r in rows})
    servers = sorted({r["servers"] for r in rows})
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for n in nodes:
        mine = sorted((r for r in rows if r["nodes"] == n), key=lambda r: r["servers"])
        x = [r["servers"] for r in mine]
        line, = ax.plot(x, [r["p99_ms"] for r in mine], marker="o", label=f"{n} nodes")
        ax2.plot(x, [r["throughput_hz"] / meta["rate_hz"] for r in mine], marker="o", color=line.get_color())
        ok = [r for r in mine if r["ok"]]
        for a, key in ((ax, None), (ax2, "throughput_hz")):
            a.scatter([r["servers"] for r in ok], [r[key] / meta["rate_hz"] if key else r["p99_ms"] for r in ok], s=140,
                      facecolors="none", edgecolors=line.get_color())
    ax.axhline(meta["budget_ms"], color="red", lw=1, label=f"budget {meta['budget_ms']:g} ms")
    ax.set_yscale("log")
    ax.set_ylabel("total latency p99 (ms)")
    ax2.axhline(0.9, color="red", lw=1, label="keep-up limit (0.9)")
    ax2.set_ylabel("decided / offered Level-1 rate")
    for a in (ax, ax2):
        a.set_xticks(servers)
        a.set_xlabel(f"servers in the pool ({meta['server_kind']})")
        a.legend(fontsize=8)
    fig.suptitle(f"Capacity model at {meta['rate_hz']:g} Hz, {meta['workers_per_node']} workers x "
                 f"{meta['slots_per_worker']} slots per node (circled: sustained)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
