"""Credit-based assignment of complete events to workers, without I/O.

Workers ask for work when they are free (one credit per free slot), as the ATLAS HLT
processing units do. Complete events wait in a bounded queue; when it is full the shell
stops reading the readout sources, so back-pressure reaches the Level-1 (busy, dead time)
instead of growing memory. The dispatcher keeps each event a worker holds until that
worker reports it done, so the events of a worker that dies can be given to another.
"""

from __future__ import annotations

from collections import deque
from typing import Any


class Dispatcher:
    def __init__(self, max_waiting: int):
        self.max_waiting = max_waiting
        self._credits: deque[bytes] = deque()
        self._waiting: deque[tuple[int, Any]] = deque()
        self.in_flight: dict[bytes, dict[int, Any]] = {}
        self.dispatched = 0
        self.peak_waiting = 0

    @property
    def n_waiting(self) -> int:
        return len(self._waiting)

    @property
    def n_in_flight(self) -> int:
        return sum(len(held) for held in self.in_flight.values())

    @property
    def is_full(self) -> bool:
        """True when no more complete events may be queued: stop reading sources."""
        return len(self._waiting) >= self.max_waiting

    def add_credit(self, worker: bytes, finished_l1_id: int | None = None) -> None:
        """A worker asks for one more event (and may report the one it finished)."""
        held = self.in_flight.setdefault(worker, {})
        if finished_l1_id is not None:
            held.pop(finished_l1_id, None)
        self._credits.append(worker)

    def add_event(self, l1_id: int, event: Any) -> None:
        """Queue a complete event (callers check `is_full` before reading more input)."""
        self._waiting.append((l1_id, event))
        self.peak_waiting = max(self.peak_waiting, len(self._waiting))

    def requeue(self, l1_id: int, event: Any) -> None:
        """Put an event back at the head of the queue (its worker died or was unreachable)."""
        self._waiting.appendleft((l1_id, event))
        self.peak_waiting = max(self.peak_waiting, len(self._waiting))

    def assignments(self) -> list[tuple[bytes, int, Any]]:
        """Pair waiting events with credits, oldest event first."""
        out = []
        while self._credits and self._waiting:
            worker = self._credits.popleft()
            l1_id, event = self._waiting.popleft()
            self.in_flight.setdefault(worker, {})[l1_id] = event
            self.dispatched += 1
            out.append((worker, l1_id, event))
        return out

    def forget_worker(self, worker: bytes) -> dict[int, Any]:
        """Drop a dead worker's credits; return the events it was holding."""
        self._credits = deque(w for w in self._credits if w != worker)
        return self.in_flight.pop(worker, {})

    def drain_waiting(self) -> list[tuple[int, Any]]:
        """Remove and return every event still waiting for a worker (at shutdown)."""
        out = list(self._waiting)
        self._waiting.clear()
        return out
