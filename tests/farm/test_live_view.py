"""The live view draws the window's figures from the supervisor's progress readings."""

from __future__ import annotations

import io
from array import array

from rich.console import Console

from farm import live_view
from farm.live_view import LiveProgress
from trigger_sim import clock


def reading(decided: int, l1: int, now_ns: int) -> dict:
    return {"decided": decided, "target": 100, "l1_accepted": None, "triton": decided - 1, "fallback": 1, "debug": 0,
            "readout": {"l1_accepted": l1, "vetoed_busy": 0}, "server": "127.0.0.1:8001",
            "worker_stats": {"worker-0.0": {"models": {"edge_classifier": {"triton_calls": decided}}}},
            "decided_ns": array("q", [now_ns] * decided), "total_ms": array("d", [25.0] * decided)}


def test_live_view_shows_rates_latency_fallback_and_servers(monkeypatch):
    out = io.StringIO()
    console = Console(file=out, width=160, force_terminal=False)
    monkeypatch.setattr(live_view, "REFRESH_NS", 0)
    view = LiveProgress("HLT farm", console)
    now = clock.now_ns()
    monkeypatch.setattr(live_view.clock, "now_ns", lambda: now)
    view.reading(reading(10, 12, now))
    now += clock.NS_PER_S
    view.reading(reading(30, 32, now))
    f = view.figures
    assert f.rate_out_hz == 20.0 and f.rate_in_hz == 20.0 and f.p50_ms == 25.0
    assert f.fallback_fraction == 0.0 and f.calls_per_s == {"127.0.0.1:8001": 20.0}
    console.print(live_view.figures_table(f))
    text = out.getvalue()
    for needle in ("20.0 Hz", "25.0 ms", "0.0 %", "127.0.0.1:8001 20"):
        assert needle in text, text
