"""Event-building bookkeeping, without I/O.

Fragments arrive by (Level-1 id, source id) in any order and interleaving. An event is
complete when every expected source has sent once; an event still incomplete after the
build timeout, or pushed out because too many are under construction, leaves as
incomplete (the shell sends it to the MissingData debug stream). Duplicates, fragments
from unknown sources, and fragments of events that already left are counted and dropped:
an event leaves the builder exactly once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PendingEvent:
    """An event under construction (or leaving): its fragments keyed by source id."""

    l1_id: int
    first_ns: int
    fragments: dict[int, Any] = field(default_factory=dict)
    l1_time_ns: int = 0
    done_ns: int = 0
    notes: list[str] = field(default_factory=list)  # why the event is flagged (rejected fragments, ...)
    attempts: int = 0  # deliveries to a worker (a worker that dies holding it gets it retried once)
    dispatched_ns: int = 0  # when the latest delivery left
    handoff: Any = None  # where the shell put the event's bytes for its worker (shared memory), while there

    def missing(self, sources: Iterable[int]) -> list[int]:
        return [s for s in sources if s not in self.fragments]


@dataclass
class BuilderCounters:
    fragments_in: int = 0
    events_complete: int = 0
    events_incomplete: int = 0
    evicted_for_space: int = 0
    duplicate_fragments: int = 0
    unknown_source_fragments: int = 0
    late_fragments: int = 0


class EventBuilderState:
    """Collects fragments by Level-1 id; reports complete and timed-out events."""

    def __init__(self, sources: Iterable[int], build_timeout_ns: int, max_building: int, remember_done: int = 65536):
        self.sources = tuple(sorted(set(sources)))
        self._expected = frozenset(self.sources)
        self.build_timeout_ns = build_timeout_ns
        self.max_building = max_building
        self._building: OrderedDict[int, PendingEvent] = OrderedDict()  # oldest first
        self._done: OrderedDict[int, None] = OrderedDict()  # recently finished ids
        self._remember_done = remember_done
        self.counters = BuilderCounters()

    @property
    def n_building(self) -> int:
        return len(self._building)

    def note(self, l1_id: int, text: str) -> bool:
        """Flag a pending event (e.g. one of its fragments was rejected); False if not pending."""
        event = self._building.get(l1_id)
        if event is None:
            return False
        event.notes.append(text)
        return True

    def add(self, l1_id: int, source_id: int, payload: Any, now_ns: int, l1_time_ns: int = 0) -> tuple[PendingEvent | None, PendingEvent | None]:
        """Add one fragment.

        Returns (complete, evicted): the event this fragment completed, if any, and an
        older event pushed out incomplete to respect `max_building`, if any.
        """
        self.counters.fragments_in += 1
        if source_id not in self._expected:
            self.counters.unknown_source_fragments += 1
            return None, None
        if l1_id in self._done:
            self.counters.late_fragments += 1
            return None, None
        event = self._building.get(l1_id)
        evicted = None
        if event is None:
            if len(self._building) >= self.max_building:
                _, evicted = self._building.popitem(last=False)
                self._finish(evicted, now_ns, complete=False)
                self.counters.evicted_for_space += 1
            event = PendingEvent(l1_id, now_ns, l1_time_ns=l1_time_ns)
            self._building[l1_id] = event
        if source_id in event.fragments:
            self.counters.duplicate_fragments += 1
            return None, evicted
        event.fragments[source_id] = payload
        if len(event.fragments) == len(self._expected):
            del self._building[l1_id]
            self._finish(event, now_ns, complete=True)
            return event, evicted
        return None, evicted

    def expire(self, now_ns: int) -> list[PendingEvent]:
        """Events whose build timeout has passed, oldest first (they leave incomplete)."""
        out = []
        while self._building:
            l1_id, event = next(iter(self._building.items()))
            if now_ns - event.first_ns < self.build_timeout_ns:
                break
            del self._building[l1_id]
            self._finish(event, now_ns, complete=False)
            out.append(event)
        return out

    def drain(self, now_ns: int) -> list[PendingEvent]:
        """Every event still under construction (at shutdown): they leave incomplete."""
        out = list(self._building.values())
        self._building.clear()
        for event in out:
            self._finish(event, now_ns, complete=False)
        return out

    def next_expiry_ns(self) -> int | None:
        """When the oldest pending event times out (for the shell's poll timeout)."""
        if not self._building:
            return None
        return next(iter(self._building.values())).first_ns + self.build_timeout_ns

    def _finish(self, event: PendingEvent, now_ns: int, complete: bool) -> None:
        event.done_ns = now_ns
        if complete:
            self.counters.events_complete += 1
        else:
            self.counters.events_incomplete += 1
        self._done[event.l1_id] = None
        if len(self._done) > self._remember_done:
            self._done.popitem(last=False)
