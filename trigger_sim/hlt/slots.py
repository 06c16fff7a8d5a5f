"""A worker's event slots, without I/O: which event runs next, which wait for the server.

A worker with N slots holds up to N events at once, as a multi-slot AthenaMT process or
CMSSW's ExternalWork modules do. Each event is a generator (`HltSequence.run` run
asynchronously) that yields what it waits for (a call in flight) and returns its result.
The worker has one thread of its own work, so one event runs at a time: of those that can
run (just admitted, or their answer in), the one that has run the fewest segments, the oldest
among equals. So requests go out as early as possible and the server is kept busy while the
worker finishes other events (oldest-first alone lets the CPU idle when server time and CPU
work are balanced); no event waits long, as a new one is admitted only when another ends.
An event that yielded waits until the shell reports the answer (`answered`); one that
returned frees its slot. The shell (the worker process) admits events while a slot is
free, and wakes on the builder's socket or on an answer; nothing here touches either.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

READY = "ready"  # can run: just admitted, or its answer is in
WAITING = "waiting"  # set aside until `answered`


@dataclass
class _Slot:
    token: int
    l1_id: int
    run: Generator[Any, None, Any]
    state: str = READY
    segments: int = 0  # times it ran until it waited


@dataclass(frozen=True)
class Parked:
    """The event yielded `wait` (a request in flight): tell `answered(token)` when it is done."""

    token: int
    l1_id: int
    wait: Any


@dataclass(frozen=True)
class Finished:
    """The event returned `result`; its slot is free."""

    token: int
    l1_id: int
    result: Any


class SlotScheduler:
    def __init__(self, n_slots: int):
        if n_slots < 1:
            raise ValueError(f"a worker needs at least one event slot, not {n_slots}")
        self.n_slots = n_slots
        self._slots: dict[int, _Slot] = {}  # token -> slot, in admission order
        self._next_token = 0
        self.admitted = 0
        self.finished = 0
        self.peak_held = 0

    @property
    def free(self) -> int:
        return self.n_slots - len(self._slots)

    @property
    def held(self) -> int:
        return len(self._slots)

    def l1_ids(self) -> list[int]:
        """The events held, oldest first."""
        return [s.l1_id for s in self._slots.values()]

    def waiting(self) -> int:
        return sum(s.state == WAITING for s in self._slots.values())

    def admit(self, l1_id: int, run: Generator[Any, None, Any]) -> int:
        """Take an event into a free slot; returns its token. ValueError when none is free."""
        if not self.free:
            raise ValueError(f"no free slot for event {l1_id}: all {self.n_slots} hold an event")
        token = self._next_token
        self._next_token += 1
        self._slots[token] = _Slot(token, l1_id, run)
        self.admitted += 1
        self.peak_held = max(self.peak_held, len(self._slots))
        return token

    def next_ready(self) -> int | None:
        """The token of the event to run next (fewest segments run, then oldest), or None."""
        ready = [s for s in self._slots.values() if s.state == READY]
        return min(ready, key=lambda s: (s.segments, s.token)).token if ready else None

    def resume(self, token: int) -> Parked | Finished:
        """Run the event until it waits (Parked) or ends (Finished, slot freed). An exception
        from the event frees its slot and is raised to the caller."""
        slot = self._slots[token]
        if slot.state != READY:
            raise ValueError(f"event {slot.l1_id} is waiting for its answer; it cannot run")
        try:
            wait = slot.run.send(None)
        except StopIteration as stop:
            del self._slots[token]
            self.finished += 1
            return Finished(token, slot.l1_id, stop.value)
        except BaseException:
            del self._slots[token]
            self.finished += 1
            raise
        slot.state = WAITING
        slot.segments += 1
        return Parked(token, slot.l1_id, wait)

    def answered(self, token: int) -> bool:
        """The answer the event waited for is in: it can run again. False for a token that is
        not waiting (already resumed or dropped): nothing changes."""
        slot = self._slots.get(token)
        if slot is None or slot.state != WAITING:
            return False
        slot.state = READY
        return True

    def drop_all(self) -> list[int]:
        """Close every held event's generator (at shutdown); returns their Level-1 ids."""
        out = []
        for slot in self._slots.values():
            slot.run.close()
            out.append(slot.l1_id)
        self._slots.clear()
        return out
