"""Which shared-memory regions a Triton client may write a request into, without I/O.

A client on the server's host can hand Triton its tensors in system shared memory instead of
inside the gRPC message (a graph-sized request: about 3x faster, measured in BENCHMARKS.md).
The danger is reuse: a request abandoned at its deadline may still be read, or answered
into its output region, by the server after the client has moved on. Writing the next
event's tensors into those regions would let a late answer of the old event pass for the
new one. So every slot (an input region and an output region) that took part in a failed
call is quarantined for `quarantine_ns` (longer than the server could still be working on
it), and the next call uses another slot; when every slot is quarantined the caller sends
its tensors in the gRPC message instead. After a failure the server may also have lost its
registrations (a restart), so every slot is registered again before its next use.

Time is passed in; the I/O shell is `trigger_sim.inference.triton_shm`.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_REGION_BYTES = 1 << 16


def region_size(n_bytes: int) -> int:
    """Capacity for a request of `n_bytes`: the next power of two, at least MIN_REGION_BYTES,
    so a slot is resized only a few times as events grow."""
    if n_bytes < 0:
        raise ValueError(f"a request cannot have {n_bytes} bytes")
    size = MIN_REGION_BYTES
    while size < n_bytes:
        size *= 2
    return size


@dataclass
class Slot:
    index: int
    in_bytes: int = 0  # capacity of the input region (0: not created)
    out_bytes: int = 0
    registered: bool = False  # registered with the server as it is now
    quarantined_until_ns: int = 0
    in_use: bool = False


@dataclass(frozen=True)
class Plan:
    """What to do before writing a request into `slot`: (re)create a region at the size
    given (0: keep it), then register both regions again if `register`."""

    slot: int
    new_in_bytes: int
    new_out_bytes: int
    register: bool


class RegionPool:
    def __init__(self, max_slots: int, quarantine_ns: int):
        if max_slots < 1 or quarantine_ns <= 0:
            raise ValueError("max_slots must be >= 1 and quarantine_ns > 0")
        self.slots = [Slot(i) for i in range(max_slots)]
        self.quarantine_ns = quarantine_ns
        self.quarantined = 0  # slots put in quarantine, in all
        self.none_free = 0  # requests that found no slot (sent in the gRPC message)

    def ensure_slots(self, n: int) -> None:
        """Keep at least `n` slots (a client with several requests in flight needs one each);
        the new ones are created at their first use."""
        self.slots.extend(Slot(i) for i in range(len(self.slots), n))

    def acquire(self, now_ns: int, in_bytes: int, out_bytes: int) -> Plan | None:
        """A slot for a request of `in_bytes` in and `out_bytes` out, or None when every slot
        is busy or quarantined. Slots already created are preferred (no new region)."""
        free = [s for s in self.slots if not s.in_use and s.quarantined_until_ns <= now_ns]
        if not free:
            self.none_free += 1
            return None
        slot = min(free, key=lambda s: (s.in_bytes == 0, s.index))
        slot.in_use = True
        new_in = region_size(in_bytes) if slot.in_bytes < in_bytes or slot.in_bytes == 0 else 0
        new_out = region_size(out_bytes) if slot.out_bytes < out_bytes or slot.out_bytes == 0 else 0
        register = not slot.registered or bool(new_in or new_out)
        return Plan(slot.index, new_in, new_out, register)

    def prepared(self, plan: Plan) -> None:
        """The plan's regions now exist at their sizes and are registered."""
        slot = self.slots[plan.slot]
        slot.in_bytes = plan.new_in_bytes or slot.in_bytes
        slot.out_bytes = plan.new_out_bytes or slot.out_bytes
        slot.registered = True

    def release(self, plan: Plan, now_ns: int, ok: bool) -> None:
        """The call is over. A failed one quarantines its slot and makes every slot register
        again before its next use (the server may have restarted without them)."""
        slot = self.slots[plan.slot]
        slot.in_use = False
        if ok:
            return
        slot.quarantined_until_ns = now_ns + self.quarantine_ns
        self.quarantined += 1
        for s in self.slots:
            s.registered = False

    def lost_regions(self, plan: Plan) -> None:
        """Preparing the plan failed half-way: its regions are in an unknown state, so they
        are made again from nothing next time."""
        slot = self.slots[plan.slot]
        slot.in_bytes = slot.out_bytes = 0
        slot.registered = False
