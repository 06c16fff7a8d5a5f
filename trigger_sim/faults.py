"""Readout fault injection (pure): what to do to each fragment's frames before sending.

Given the frames of one fragment, returns the list of frame lists to send instead:
unchanged, corrupted (one payload byte flipped), truncated (last frame cut), duplicated,
followed by a foreign fragment (another run number), or nothing (a silent source).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np

from trigger_sim.config import FaultConfig
from trigger_sim.event import Fragment
from trigger_sim.wire import encode_fragment


class FaultInjector:
    def __init__(self, cfg: FaultConfig, seed: int):
        self.cfg = cfg
        self.rng = np.random.default_rng([seed, 0xFA017])
        self.injected: Counter = Counter()

    def apply(self, fragment: Fragment, source_index: int, event_index: int) -> list[list]:
        cfg = self.cfg
        if cfg.silent_source == source_index and event_index >= cfg.silent_after_events:
            self.injected["silent_source"] += 1
            return []
        frames = encode_fragment(fragment)
        u = self.rng.random(4)
        out = []
        if u[0] < cfg.corrupt_fraction and len(frames) > 1 and any(len(f) for f in frames[1:]):
            k = next(i for i in range(len(frames) - 1, 0, -1) if len(frames[i]))
            data = bytearray(frames[k])
            data[int(self.rng.integers(len(data)))] ^= 0xFF
            frames = [*frames[:k], bytes(data), *frames[k + 1 :]]
            self.injected["corrupted"] += 1
        elif u[1] < cfg.truncate_fraction and len(frames[-1]):
            frames = [*frames[:-1], bytes(frames[-1])[: len(frames[-1]) // 2]]
            self.injected["truncated"] += 1
        out.append(frames)
        if u[2] < cfg.duplicate_fraction:
            out.append(frames)
            self.injected["duplicated"] += 1
        if u[3] < cfg.foreign_fraction:
            header = replace(fragment.header, run_number=fragment.header.run_number + 1000)
            out.append(encode_fragment(Fragment(header, fragment.arrays)))
            self.injected["foreign"] += 1
        return out
