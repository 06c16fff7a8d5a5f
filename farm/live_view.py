"""The terminal's live view of a run: the progress bar and, under it, the last few seconds'
figures (rate in and out, latency p50/p99, fallback fraction, dead time, calls per server).

The figures come from `trigger_sim.live_window.LiveWindow` (plain code, tested); this module
only feeds it run control's progress readings and draws them with rich.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from trigger_sim import clock
from trigger_sim.live_window import LiveFigures, LiveWindow, calls_per_server

WINDOW_S = 5.0
REFRESH_NS = 500 * clock.NS_PER_MS  # figures recomputed twice a second, whatever the progress calls' rate


def figures_table(f: LiveFigures, window_s: float = WINDOW_S) -> Table:
    """The figures as one small table (what the live view shows under the bar)."""
    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f} %"

    def ms(x: float | None) -> str:
        return "-" if x is None else f"{x:.1f} ms"

    table = Table(title=f"last {window_s:g} s", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("in", "out", "p50", "p99", "fallback", "dead time", "calls/s per server"):
        table.add_column(col, justify="right" if col != "calls/s per server" else "left")
    servers = ", ".join(f"{s} {v:.0f}" for s, v in f.calls_per_s.items()) or "-"
    table.add_row(f"{f.rate_in_hz:.1f} Hz", f"{f.rate_out_hz:.1f} Hz", ms(f.p50_ms), ms(f.p99_ms), pct(f.fallback_fraction),
                  pct(f.deadtime_fraction), servers)
    return table


class LiveProgress(Progress):
    """rich's progress bar with the figures table drawn under it."""

    def __init__(self, label: str, console: Console, window_s: float = WINDOW_S, disable: bool = False):
        self.window = LiveWindow(window_s)  # set before rich's constructor, which may draw already
        self.window_s = window_s
        self.figures = LiveFigures()
        self._next_ns = 0
        super().__init__(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                         TextColumn("{task.fields[info]}"), console=console, transient=False, disable=disable)

    def get_renderables(self):
        yield self.make_tasks_table(self.tasks)
        yield figures_table(self.figures, self.window_s)

    def reading(self, p: dict[str, Any]) -> None:
        """One progress reading of run control (`farm.run_watch.progress_reading`)."""
        now = clock.now_ns()
        if now < self._next_ns:
            return
        self._next_ns = now + REFRESH_NS
        readout = p.get("readout") or {}
        counts = {"l1_accepted": readout.get("l1_accepted", 0), "vetoed_busy": readout.get("vetoed_busy", 0),
                  "decided": p["decided"], "triton": p["triton"], "fallback": p["fallback"]}
        calls = calls_per_server(p.get("worker_stats") or {}, p.get("server") or "server")
        self.figures = self.window.update(now, counts, calls, p.get("decided_ns", ()), p.get("total_ms", ()))

    def new_run(self) -> None:
        """A new run (the scan's next point): the window starts again."""
        self.window = LiveWindow(self.window_s)
        self.figures = LiveFigures()
