"""Event model: fragments (one per readout source) and built events.

A fragment is what one readout source sends for one Level-1-accepted event: a header and
named numpy arrays. A built event is the set of fragments of one Level-1 id.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Source ids: high byte is the detector, low byte the partition within it.
TRACKER_SOURCE_BASE = 0x100
CALO_SOURCE_BASE = 0x200


def tracker_source_id(sector: int) -> int:
    """Source id of tracker phi sector `sector`."""
    return TRACKER_SOURCE_BASE + sector


def calo_source_id(region: int) -> int:
    """Source id of calorimeter eta region `region`."""
    return CALO_SOURCE_BASE + region


def is_tracker_source(source_id: int) -> bool:
    return source_id & 0xFF00 == TRACKER_SOURCE_BASE


def is_calo_source(source_id: int) -> bool:
    return source_id & 0xFF00 == CALO_SOURCE_BASE


@dataclass(frozen=True)
class FragmentHeader:
    """Identity of a fragment: which run, which Level-1 accept, which source."""

    run_number: int
    l1_id: int
    bcid: int
    source_id: int
    l1_time_ns: int  # scheduled Level-1 accept time, clock.now_ns() clock


@dataclass(frozen=True)
class Fragment:
    """One source's data for one event: a header and named arrays (order preserved)."""

    header: FragmentHeader
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
