"""Per-event soft and hard timeouts, as the ATLAS HLT event loop has them (pure logic).

The soft timeout (0.8 x hard by default) asks the algorithms to stop cleanly: the sequence
checks it between steps and leaves with its partial result. If a step is still running at
the hard timeout, the watchdog force-accepts the event into HltTimeout itself, and the
result the worker computes later is dropped: the event is decided exactly once.
Thread-safe: the worker's main thread and its watchdog thread share one instance.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

NONE = "none"
SOFT = "soft"
HARD = "hard"
SOFT_FRACTION = 0.8  # soft timeout as a fraction of the hard budget (ATLAS HLT convention)


def soft_deadline_ns(start_ns: int, hard_ns: int, soft_fraction: float = SOFT_FRACTION) -> int:
    """When an event that started at `start_ns` reaches its soft timeout: the one rule the
    sequence (between its steps) and the watchdog (from its thread) both follow."""
    return start_ns + int(hard_ns * soft_fraction)


@dataclass
class _Watched:
    l1_id: int
    start_ns: int
    payload: Any
    soft_fired: bool = False
    hard_fired: bool = False


class EventWatch:
    """The timeouts of every event a worker holds (one per event slot), keyed by Level-1 id."""

    def __init__(self, hard_ns: int, soft_fraction: float = SOFT_FRACTION):
        if hard_ns <= 0 or not 0 < soft_fraction <= 1:
            raise ValueError("hard_ns must be > 0 and soft_fraction within (0, 1]")
        self.hard_ns = hard_ns
        self.soft_ns = soft_deadline_ns(0, hard_ns, soft_fraction)
        self._lock = threading.Lock()
        self._events: dict[int, _Watched] = {}
        self.soft_timeouts = 0
        self.hard_timeouts = 0

    def start(self, l1_id: int, now_ns: int, payload: Any = None) -> None:
        """An event begins; `payload` is what the watchdog needs to force-accept it."""
        with self._lock:
            self._events[l1_id] = _Watched(l1_id, now_ns, payload)

    def soft_deadline_ns(self, l1_id: int) -> int | None:
        with self._lock:
            w = self._events.get(l1_id)
            return w.start_ns + self.soft_ns if w else None

    def soft_expired(self, l1_id: int) -> bool:
        with self._lock:
            w = self._events.get(l1_id)
            return bool(w and w.soft_fired)

    def watched(self) -> int:
        with self._lock:
            return len(self._events)

    def check(self, now_ns: int) -> list[tuple[str, int, Any]]:
        """Called periodically by the watchdog: the transitions since the last call, each
        reported once, as (SOFT | HARD, l1_id, payload). On HARD the caller force-accepts the
        event into HltTimeout."""
        out = []
        with self._lock:
            for w in self._events.values():
                elapsed = now_ns - w.start_ns
                if elapsed >= self.hard_ns and not w.hard_fired:
                    w.hard_fired = True
                    self.hard_timeouts += 1
                    out.append((HARD, w.l1_id, w.payload))
                elif elapsed >= self.soft_ns and not w.soft_fired:
                    w.soft_fired = True
                    self.soft_timeouts += 1
                    out.append((SOFT, w.l1_id, w.payload))
        return out

    def finish(self, l1_id: int) -> bool:
        """The event's sequence ended. True if its result must be sent (no hard timeout fired)."""
        with self._lock:
            w = self._events.pop(l1_id, None)
            return not (w is not None and w.hard_fired)
