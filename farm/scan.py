"""Rate scan: the farm at a series of input rates, or a search for the highest rate it
sustains (p99 of the total latency under the event budget, no dead time, nothing lost).

Each point is a fresh farm run of a fixed duration against one shared Triton server; the
point's figures come from its measurement windows, and it counts as stable when the last
three windows' throughputs agree within 10 %.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm.summary import WINDOW_S
from farm.supervisor import run_farm
from farm.server_device import local_server
from trigger_sim.config import FarmConfig, with_overrides
from trigger_sim.windows import merge, stable

STEPS_REPORTED = ("total", "build", "queue", "edge_classifier", "jet_tagger", "worker_total")
PERCENTILES = ("p50", "p90", "p99", "p99.9")
MAX_DEADTIME = 0.01
KEEP_UP_FRACTION = 0.9  # decided per second / input rate: below it a backlog is growing
MIN_WINDOW_EVENTS = 300  # Poisson noise on a window's count, 1/sqrt(n): under 6 %, so 10 % agreement means something
POINT_WINDOWS = 4  # a point lasts this many windows' worth of events: three are judged, one is margin


@dataclass
class Point:
    rate_hz: float
    summary: dict[str, Any]

    @property
    def windows(self) -> list[dict[str, float]]:
        """Measurement windows of at least MIN_WINDOW_EVENTS events."""
        return merge(self.summary["windows"], MIN_WINDOW_EVENTS)

    @property
    def stable(self) -> bool:
        return stable(self.windows)

    @property
    def throughput_hz(self) -> float:
        windows = self.windows[-3:]
        if windows:
            return sum(w["throughput_hz"] for w in windows) / len(windows)
        return self.summary["throughput"]["decided_per_s"]

    def sustained(self, budget_ms: float) -> bool:
        """Stable windows, keeping up with the input, p99 under budget, no dead time, nothing lost."""
        s = self.summary
        return (self.stable and s["events"]["lost"] == 0 and s["level1"]["deadtime_fraction"] <= MAX_DEADTIME
                and self.throughput_hz >= KEEP_UP_FRACTION * s["level1"]["input_rate_hz"]
                and s["latency_ms"].get("total", {}).get("p99", float("inf")) < budget_ms)

    def row(self, budget_ms: float) -> dict[str, Any]:
        s = self.summary
        decided = max(s["inference"]["triton_calls"] + s["inference"]["fallback_calls"], 1)
        row = {"rate_hz": self.rate_hz, "input_rate_hz": s["level1"]["input_rate_hz"], "throughput_hz": self.throughput_hz,
               "stable": self.stable, "sustained": self.sustained(budget_ms), "lost": s["events"]["lost"],
               "deadtime_fraction": s["level1"]["deadtime_fraction"],
               "fallback_fraction": s["inference"]["fallback_calls"] / decided}
        for step in STEPS_REPORTED:
            stats = s["latency_ms"].get(step, {})
            for p in PERCENTILES:
                row[f"{step}_{p}_ms"] = stats.get(p, 0.0)
        return row


def next_search_rate(low_ok: float | None, high_bad: float | None, max_rate: float) -> float:
    """Bisection on a log scale between the highest sustained and lowest failed rates (pure)."""
    if high_bad is None:
        return min(max_rate, (low_ok or 0) * 2) if low_ok else max_rate
    if low_ok is None:
        return high_bad / 2
    return (low_ok * high_bad) ** 0.5


def run_scan(config: FarmConfig, rates: list[float] | None, duration_s: float, search_steps: int = 6,
             min_rate: float = 10.0, max_rate: float = 1000.0, replay: str | None = None,
             on_point: Callable[[Point, int, int], None] | None = None) -> dict[str, Any]:
    """Run every rate in `rates`, or search for the saturation rate; return the scan result."""
    budget_ms = config.worker.budget_ms
    points: list[Point] = []
    with local_server(config) as server:
        base = with_overrides(config, inference={"triton_url": config.inference.triton_url or server.grpc_url})

        def measure(rate: float, index: int, total: int) -> Point:
            cfg = with_overrides(base, readout={"rate_hz": rate})
            # long enough for four windows' worth of MIN_WINDOW_EVENTS after the warm-up window,
            # so that three whole windows form even when Poisson arrivals fall short (with
            # exactly three windows' worth, a point often had two and was run again, twice as long)
            point_s = max(duration_s, POINT_WINDOWS * MIN_WINDOW_EVENTS / rate + 2 * WINDOW_S + 1)
            summary = run_farm(cfg, None, point_s, output_dir=None, replay=replay, loop=replay is not None)
            point = Point(rate, summary)
            if not point.stable:  # one longer retry before the point is reported unstable
                summary = run_farm(cfg, None, 2 * point_s, output_dir=None, replay=replay, loop=replay is not None)
                point = Point(rate, summary)
            points.append(point)
            if on_point:
                on_point(point, index, total)
            return point

        if rates:
            for i, rate in enumerate(rates):
                measure(rate, i, len(rates))
            saturation = max((p.rate_hz for p in points if p.sustained(budget_ms)), default=None)
        else:
            def sustained(rate: float, index: int, again: bool) -> bool:
                if again:
                    points.pop()  # the repeat replaces the disturbed measurement
                return measure(rate, index, search_steps).sustained(budget_ms)

            saturation = search_saturation(sustained, search_steps, min_rate, max_rate)
    points.sort(key=lambda p: p.rate_hz)
    return {"budget_ms": budget_ms, "duration_s": duration_s, "saturation_rate_hz": saturation,
            "points": [p.row(budget_ms) for p in points], "windows": {str(p.rate_hz): p.summary["windows"] for p in points}}


def search_saturation(sustained: Callable[[float, int, bool], bool], steps: int, min_rate: float,
                      max_rate: float) -> float | None:
    """The highest rate found sustained in `steps` measurements (None if not even min_rate).

    `sustained(rate, index, again)` measures one point; `again` is True when it repeats the
    previous one. The lowest rate decides whether the search goes on at all, so a failure
    there is measured once more (one point disturbed by another process must not end it).
    """
    low_ok = high_bad = None
    rate = min_rate
    for i in range(steps):
        ok = sustained(rate, i, False)
        if not ok and i == 0:
            ok = sustained(rate, i, True)
        if ok:
            low_ok = rate if low_ok is None else max(low_ok, rate)
        else:
            high_bad = rate if high_bad is None else min(high_bad, rate)
        if low_ok is None and high_bad is not None and high_bad <= min_rate:
            break
        rate = next_search_rate(low_ok, high_bad, max_rate)
    return low_ok


def write_outputs(result: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """scan.json, scan.csv and scan.png in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "scan.json", "csv": out_dir / "scan.csv", "png": out_dir / "scan.png"}
    paths["json"].write_text(json.dumps(result, indent=2))
    rows = result["points"]
    if rows:
        with open(paths["csv"], "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    plot(result, paths["png"])
    return paths


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["points"]
    x = [r["rate_hz"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 5))
    for p, style in zip(PERCENTILES, ("-", "--", "-.", ":")):
        ax.plot(x, [r[f"total_{p}_ms"] for r in rows], style, marker="o", label=f"total latency {p}")
    ax.axhline(result["budget_ms"], color="red", lw=1, label=f"budget {result['budget_ms']:g} ms")
    ax.set_xlabel("offered Level-1 rate (Hz)")
    ax.set_ylabel("latency from Level-1 time (ms)")
    ax.set_yscale("log")
    ax2 = ax.twinx()
    ax2.plot(x, [r["throughput_hz"] for r in rows], color="black", marker="s", label="decided per second")
    ax2.set_ylabel("throughput (events/s)")
    ax2.set_ylim(bottom=0)
    if result.get("saturation_rate_hz"):
        ax.axvline(result["saturation_rate_hz"], color="grey", ls=":", label=f"sustained up to {result['saturation_rate_hz']:.0f} Hz")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=8)
    ax.set_title("trigger-sim rate scan")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
