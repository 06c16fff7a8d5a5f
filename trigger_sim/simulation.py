"""One call from a Level-1 id to the fragments every readout source sends for it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger_sim.config import FarmConfig
from trigger_sim.detector import CaloTowers, TrackerHits, simulate_calo, simulate_tracker
from trigger_sim.event import Fragment
from trigger_sim.partition import make_fragments
from trigger_sim.physics import GeneratedEvent, generate_event

BUNCHES_PER_ORBIT = 3564


@dataclass(frozen=True)
class SimulatedEvent:
    truth: GeneratedEvent
    hits: TrackerHits
    towers: CaloTowers


def simulate(config: FarmConfig, l1_id: int) -> SimulatedEvent:
    """Generate and simulate event `l1_id` (reproducible from the run seed)."""
    truth = generate_event(config.physics, config.run.seed, l1_id)
    rng = np.random.default_rng([config.run.seed, l1_id, 1])
    hits = simulate_tracker(truth.particles, config.tracker, rng)
    towers = simulate_calo(truth.particles, config.calo, config.tracker.field_t, rng)
    return SimulatedEvent(truth, hits, towers)


def bunch_crossing(config: FarmConfig, l1_id: int) -> int:
    """A reproducible bunch-crossing id for an event."""
    return int(np.random.default_rng([config.run.seed, l1_id, 2]).integers(0, BUNCHES_PER_ORBIT))


def event_fragments(config: FarmConfig, l1_id: int, l1_time_ns: int) -> list[Fragment]:
    """The fragments of event `l1_id`, one per readout source."""
    return fragments_of(config, simulate(config, l1_id), l1_id, l1_time_ns)


def fragments_of(config: FarmConfig, sim: SimulatedEvent, l1_id: int, l1_time_ns: int) -> list[Fragment]:
    """The fragments of a simulated event (`simulate(config, l1_id)`), one per readout source."""
    return make_fragments(config, sim.hits, sim.towers, config.run.run_number, l1_id, bunch_crossing(config, l1_id), l1_time_ns)


def warm_up(config: FarmConfig) -> None:
    """Load the simulation's compiled kernels from numba's on-disk cache (or compile them, seconds,
    the first time): simulates and drops one event. Call before pacing starts, so the first
    Level-1 slot is not late."""
    event_fragments(config, 0, 0)
