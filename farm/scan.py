"""Rate scan: the farm at a series of input rates, or a search for the highest rate it
sustains, with the one definition of "sustained" in `trigger_sim.sustained` (the benchmark's
farm case uses the same): nothing lost, no debug event, no problem, dead time <= 1 %,
throughput keeping up, stable windows, and a total-latency p99 under the budget from
>= 1,000 events.

Each run is a fresh farm against one shared Triton server (or, for a farm that starts
several servers of its own, with them: `scan_server`), long enough for those 1,000
events (`sustained.run_seconds`), with its own seed (`sustained.repeat_seed`: new Poisson
arrivals and new events every run). A rate counts as sustained when all its runs
(`repeats`) pass. The search doubles from `min_rate` until a rate fails, then bisects on a
log scale until the bracket is within the measured run-to-run spread (at least 5 %), or
`search_steps` rates have been tried.
"""

from __future__ import annotations

import csv
import json
from contextlib import AbstractContextManager, nullcontext
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from farm.summary import WINDOW_S
from farm.one_host import run_farm
from farm.server_device import local_server
from farm.triton_server import TritonServer
from trigger_sim import sustained as definition
from trigger_sim.config import FarmConfig, with_overrides
from trigger_sim.event_table_io import check_writable

STEPS_REPORTED = ("total", "assign", "build", "queue", "edge_classifier", "jet_tagger", "worker_total")
PERCENTILES = ("p50", "p90", "p99", "p99.9")
RUN_OVERHEAD_S = 2 * WINDOW_S + 1  # the skipped warm-up window, the dropped partial last one, start-up


@dataclass
class Point:
    """One farm run at one rate, and its verdict."""

    rate_hz: float
    summary: dict[str, Any]
    seed: int
    budget_ms: float
    criteria: definition.Criteria = definition.CRITERIA
    reasons: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.reasons = definition.verdict(self.summary, self.budget_ms, self.criteria)[1]

    @property
    def windows(self) -> list[dict[str, float]]:
        """Measurement windows of at least `min_window_events` events."""
        return definition.windows(self.summary, self.criteria)

    @property
    def stable(self) -> bool:
        return definition.is_stable(self.summary, self.criteria)

    @property
    def throughput_hz(self) -> float:
        return definition.throughput_hz(self.summary, self.criteria)

    @property
    def sustained(self) -> bool:
        return not self.reasons

    def row(self) -> dict[str, Any]:
        s = self.summary
        decided = max(s["inference"]["triton_calls"] + s["inference"]["fallback_calls"], 1)
        row = {"rate_hz": self.rate_hz, "seed": self.seed, "input_rate_hz": s["level1"]["input_rate_hz"],
               "throughput_hz": self.throughput_hz, "decided_events": definition.p99_events(s), "stable": self.stable,
               "sustained": self.sustained, "lost": s["events"]["lost"], "debug": s["events"]["debug"],
               "deadtime_fraction": s["level1"]["deadtime_fraction"],
               "fallback_fraction": s["inference"]["fallback_calls"] / decided, "why_not": "; ".join(self.reasons),
               "events_table": s.get("output", {}).get("events_table")}
        for step in STEPS_REPORTED:
            stats = s["latency_ms"].get(step, {})
            for p in PERCENTILES:
                row[f"{step}_{p}_ms"] = stats.get(p, 0.0)
        return row


def scan_server(config: FarmConfig) -> AbstractContextManager[TritonServer | None]:
    """The local server the scan's runs share, or none when the farm is given no server and
    starts several of its own (`inference.local_servers` > 1): each run then starts and stops
    them, as a farm run with that configuration does."""
    if not config.inference.server_addresses and config.inference.local_servers > 1:
        return nullcontext(None)
    return local_server(config)


def run_scan(config: FarmConfig, rates: list[float] | None, duration_s: float, search_steps: int = 6,
             min_rate: float = 10.0, max_rate: float = 1000.0, replay: str | None = None,
             on_point: Callable[[Point, int, int], None] | None = None, repeats: int = 1,
             events_tables: str | Path | None = None, progress: Callable[[dict[str, Any]], None] | None = None,
             criteria: definition.Criteria = definition.CRITERIA) -> dict[str, Any]:
    """Run every rate in `rates` (`repeats` runs each), or search for the highest sustained
    rate (at most `search_steps` rates, `repeats` runs at each); return the scan result.

    `duration_s` is each run's minimum: a run lasts as long as the events of its p99 and of its
    stability windows need (`criteria`: the sustained definition's, 1,000 events; smaller in tests).
    `events_tables`: each run's per-event table goes beside this name, one file per point
    (`point_table_path`); None: no tables. `progress`: each run's progress readings (the live view)."""
    budget_ms = config.worker.budget_ms
    if events_tables is not None:
        check_writable(events_tables)  # a .root name without uproot fails before the server starts
    points: list[Point] = []
    with scan_server(config) as server:
        base = config if server is None else with_overrides(
            config, inference={"triton_url": config.inference.triton_url or server.grpc_url})
        total = len(rates) * repeats if rates else search_steps * repeats

        def measure(rate: float) -> Point:
            seed = definition.repeat_seed(config.run.seed, len(points))
            cfg = with_overrides(base, readout={"rate_hz": rate}, run={"seed": seed})
            seconds = max(duration_s, definition.run_seconds(rate, RUN_OVERHEAD_S, criteria))
            table = point_table_path(events_tables, rate, seed) if events_tables is not None else None
            point = Point(rate, run_farm(cfg, None, seconds, output_dir=None, replay=replay, loop=replay is not None,
                                         events_table=table, progress=progress), seed, budget_ms, criteria)
            points.append(point)
            if on_point:
                on_point(point, len(points) - 1, total)
            return point

        if rates:
            verdicts: dict[float, list[bool]] = {}
            for rate in rates:
                for _ in range(repeats):
                    verdicts.setdefault(rate, []).append(measure(rate).sustained)
            saturation = max((r for r, ok in verdicts.items() if all(ok)), default=None)
            stopped = "every rate measured"
            resolution = None
        else:
            def one(rate: float, repeat: int) -> tuple[bool, float]:
                point = measure(rate)
                return point.sustained, point.throughput_hz

            found = definition.search(one, min_rate, min_rate, max_rate, repeats, search_steps)
            saturation, stopped, resolution = found.sustained_hz, found.stopped, found.resolution
    ordered = sorted(points, key=lambda p: (p.rate_hz, p.seed))
    return {"budget_ms": budget_ms, "duration_s": duration_s, "repeats": repeats,
            "criteria": asdict(criteria), "saturation_rate_hz": saturation, "search_stopped": stopped,
            "search_resolution": resolution, "seeds": [p.seed for p in points],
            "points": [p.row() for p in ordered],
            "windows": {f"{p.rate_hz:g} Hz, seed {p.seed}": p.summary["windows"] for p in ordered}}


def point_table_path(template: str | Path, rate_hz: float, seed: int) -> Path:
    """One point's table: `events.parquet` -> `events-<rate>Hz-seed<seed>.parquet` (a file per
    run, written when the run ends, opened alone or together with pandas)."""
    template = Path(template)
    return template.with_name(f"{template.stem}-{rate_hz:g}Hz-seed{seed}{template.suffix}")


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
