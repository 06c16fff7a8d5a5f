"""Per-event inputs of the model drawn empirically from a calibration, all at once in numpy:
a row index per event (the row's steps stay together), and the sums the model needs
(CPU before each model call and after the last, each call's demand and size)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger_sim.errors import ConfigError
from trigger_sim.planning.calibration import AFTER_LAST, MODELS, STEPS_BEFORE, Calibration


@dataclass(frozen=True)
class EventDraws:
    """Column arrays, one entry per simulated event (times in ms)."""

    row: np.ndarray  # the calibration row each event was drawn from
    assign_ms: np.ndarray  # the assignment round trip, beyond any wait for a node slot
    build_ms: np.ndarray
    transfer_ms: np.ndarray
    cpu_before_ms: dict[str, np.ndarray]  # model -> CPU steps between the previous call and this one
    cpu_after_ms: np.ndarray  # CPU steps after the last call
    demand_ms: dict[str, np.ndarray]  # model -> demand on the calibration's server (0 where not called)
    size: dict[str, np.ndarray]
    called: dict[str, np.ndarray]


def draw(cal: Calibration, n: int, rng: np.random.Generator, block_events: int = 1) -> EventDraws:
    """`n` events, each a calibration row drawn uniformly with replacement; with
    `block_events` > 1, in runs of that many consecutive rows from a random start (a block
    bootstrap: the table is in decision order, so a slow spell of the real run, whatever
    caused it, stays a spell instead of being scattered)."""
    if cal.n_events == 0:
        raise ConfigError(f"calibration {cal.name!r} holds no events: pass an events calibration first "
                          "(`trigger-sim plan calibrate RUN_FOLDER`), then server calibrations")
    ev = cal.events
    if block_events > 1:
        starts = rng.integers(0, cal.n_events, -(-n // block_events))
        row = ((starts[:, None] + np.arange(block_events)) % cal.n_events).ravel()[:n]
    else:
        row = rng.integers(0, cal.n_events, n)

    def pick(name: str) -> np.ndarray:
        return ev[name][row]

    return EventDraws(
        row=row, assign_ms=pick("assign") if "assign" in ev else np.zeros(n), build_ms=pick("build"),
        transfer_ms=pick("transfer"),
        cpu_before_ms={m: sum(pick(s) for s in STEPS_BEFORE[m]) for m in MODELS},
        cpu_after_ms=sum(pick(s) for s in AFTER_LAST),
        demand_ms={m: pick(f"{m}_demand") for m in MODELS}, size={m: pick(f"{m}_size") for m in MODELS},
        called={m: pick(f"{m}_called") for m in MODELS})
