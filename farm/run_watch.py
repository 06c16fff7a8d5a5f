"""What every run loop shares while it watches the farm: how long a drain may go without
progress, the progress reading the display and the live view take, the signals that end a
run (the first drains, the second stops), and the linger that keeps the final metrics up.

Used by the one-host run and by run control of a farm across hosts alike.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from farm.collector import Collector
from trigger_sim.config import FarmConfig
from trigger_sim.event_source import config_for_recording

Progress = Callable[[dict[str, Any]], None]


def run_input(config: FarmConfig, n_events: int | None, duration_s: float | None, replay: str | Path | None,
              loop: bool) -> tuple[FarmConfig, dict[str, Any] | None]:
    """What the readout is to send, checked: the configuration to run with (a recording's
    detector geometry when replaying) and the replay for the readout ({"path", "loop"}, or None)."""
    if n_events is None and duration_s is None and (replay is None or loop):
        raise ValueError("give a number of events or a duration")
    if replay is None:
        return config, None
    return config_for_recording(config, replay), {"path": str(replay), "loop": loop}


def drain_timeout_s(config: FarmConfig) -> float:
    """How long the drain waits without any event being decided before it gives up."""
    return (config.builder.build_timeout_ms + 2 * config.worker.budget_ms) / 1e3 + 5.0


def progress_reading(collector: Collector, n_events: int | None, server: str | None = None) -> dict[str, Any]:
    """What the progress display and the live view read (cumulative counts; the decision
    times and total latencies are the collector's arrays, read from where the view left off)."""
    return {"decided": collector.ledger.decided, "target": n_events,
            "l1_accepted": (collector.end or {}).get("l1_accepted"),
            "triton": collector.inference_paths.get("triton", 0), "fallback": collector.inference_paths.get("fallback", 0),
            "debug": collector.ledger.outcomes.get("debug", 0), "readout": collector.readout_stats,
            "worker_stats": collector.worker_stats, "server": server or "none",
            "decided_ns": collector.timeline_ns, "total_ms": collector.timeline_total_ms}


class Interrupts:
    """SIGINT and SIGTERM while a run lasts: the first asks for a drain (input stops, what
    was accepted is decided), a second stops the drain. The handler only records the signal
    (no lock may be taken in a handler); the run loop reads `names`. Restores the previous
    handlers on exit."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "Interrupts":
        self._previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.names.append(signal.Signals(signum).name)

    @property
    def drain(self) -> bool:
        return bool(self.names)

    @property
    def stop(self) -> bool:
        return len(self.names) > 1

    @property
    def first(self) -> str:
        return self.names[0] if self.names else ""

    def linger(self, seconds: float) -> None:
        """Keep the process (and its metrics endpoint) up for `seconds`, or until a new signal."""
        signals, deadline = len(self.names), time.monotonic() + seconds
        while time.monotonic() < deadline and len(self.names) == signals:
            time.sleep(0.05)
