"""Credit-based assignment of complete events to workers, and their release, without I/O.

Workers ask for work when they are free (one credit per free slot), as the ATLAS HLT
processing units do. Complete events wait in a bounded queue; when it is full the shell
stops reading the readout sources, so back-pressure reaches the Level-1 (busy, dead time)
instead of growing memory.

The dispatcher keeps each event a worker holds until that worker's result for it has
arrived (results travel through the builder, on the same connection as the worker's
credits, as ATLAS's data-collection manager keeps an event until its HLT result is back):
a worker that dies before its result left has its events given to another. The first
decision for a held event is forwarded; a watchdog's forced decision marks the event
decided without freeing the worker (its main thread is still in the event), the main
thread's result frees it. Results from a worker that does not hold the event (it was
reported gone and the event re-queued) are stale and dropped: an event is decided once.
"""

from __future__ import annotations

from collections import deque
from typing import Any

FORWARD = "forward"  # the event's first decision: forward it (with the event's fragments)
LATE = "late"  # the event was already decided (the watchdog's forced decision came first)
STALE = "stale"  # the sender does not hold the event: dropped


class Dispatcher:
    def __init__(self, max_waiting: int):
        self.max_waiting = max_waiting
        self._credits: deque[bytes] = deque()
        self._waiting: deque[tuple[int, Any]] = deque()
        self.in_flight: dict[bytes, dict[int, Any]] = {}
        self._decided: set[tuple[bytes, int]] = set()  # held events already decided (forced by a watchdog)
        self._gone: set[bytes] = set()  # workers reported dead: their late messages create nothing
        self.dispatched = 0
        self.peak_waiting = 0
        self.stale_credits = 0
        self.stale_results = 0
        self.late_results = 0

    @property
    def n_waiting(self) -> int:
        return len(self._waiting)

    @property
    def n_credits(self) -> int:
        """Free worker slots held (credits not yet paired with an event)."""
        return len(self._credits)

    @property
    def n_in_flight(self) -> int:
        return sum(len(held) for held in self.in_flight.values())

    @property
    def is_full(self) -> bool:
        """True when no more complete events may be queued: stop reading sources."""
        return len(self._waiting) >= self.max_waiting

    def is_gone(self, worker: bytes) -> bool:
        return worker in self._gone

    def add_credit(self, worker: bytes, n: int = 1) -> bool:
        """A worker asks for `n` more events; False (and nothing created) if it was reported gone."""
        if worker in self._gone:
            self.stale_credits += 1
            return False
        self.in_flight.setdefault(worker, {})
        self._credits.extend([worker] * n)
        return True

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

    def assignment_batches(self, max_batch: int) -> list[tuple[bytes, list[tuple[int, Any]]]]:
        """`assignments` grouped by worker, at most `max_batch` events a group, each group's
        events oldest first: each group travels to its worker as one message. Nothing
        waits to fill a group: it holds whatever was ready in this pass."""
        if max_batch < 1:
            raise ValueError(f"max_batch {max_batch}: give at least 1")
        out: list[tuple[bytes, list[tuple[int, Any]]]] = []
        open_groups: dict[bytes, list[tuple[int, Any]]] = {}
        for worker, l1_id, event in self.assignments():
            group = open_groups.get(worker)
            if group is None or len(group) >= max_batch:
                group = open_groups[worker] = []
                out.append((worker, group))
            group.append((l1_id, event))
        return out

    def result(self, worker: bytes, l1_id: int, forced: bool = False) -> tuple[str, Any]:
        """A decision for `l1_id` from `worker` (its main thread, or its watchdog if `forced`).

        Returns (FORWARD | LATE | STALE, event). The main thread's result releases the event
        (a credit comes with it separately); a forced one only marks it decided.
        """
        held = self.in_flight.get(worker)
        event = held.get(l1_id) if held is not None else None
        if event is None:
            self.stale_results += 1
            return STALE, None
        key = (worker, l1_id)
        verdict = LATE if key in self._decided else FORWARD
        if verdict == LATE:
            self.late_results += 1
        if forced:
            self._decided.add(key)
        else:
            del held[l1_id]
            self._decided.discard(key)
        return verdict, event

    def held_decided(self, worker: bytes, l1_id: int) -> bool:
        return (worker, l1_id) in self._decided

    def orphans(self, worker: bytes) -> dict[int, Any]:
        """The worker says it is idle and has seen every event sent to it: the events still
        held for it without a decision are orphaned. Removed and returned (to re-queue);
        the worker stays known."""
        held = self.in_flight.get(worker, {})
        out = {l1_id: event for l1_id, event in held.items() if (worker, l1_id) not in self._decided}
        for l1_id in out:
            del held[l1_id]
        return out

    def forget_worker(self, worker: bytes) -> dict[int, Any]:
        """The worker is gone: drop its credits, never accept its credits again, and return
        the events it held that have no decision yet (decided ones need nothing more)."""
        self._gone.add(worker)
        self._credits = deque(w for w in self._credits if w != worker)
        held = self.in_flight.pop(worker, {})
        decided = {l1 for w, l1 in self._decided if w == worker}
        self._decided = {k for k in self._decided if k[0] != worker}
        return {l1_id: event for l1_id, event in held.items() if l1_id not in decided}

    def drain_waiting(self) -> list[tuple[int, Any]]:
        """Remove and return every event still waiting for a worker (at shutdown)."""
        out = list(self._waiting)
        self._waiting.clear()
        return out
