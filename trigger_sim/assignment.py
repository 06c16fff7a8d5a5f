"""The central assignment service: which node builds each Level-1 accept (ids and credits only).

Every node grants one credit per free event slot; each Level-1 accept waits until a node
has a credit and is assigned to it (oldest accept first, credits in the order they came,
so nodes take turns). The readout then pushes the event's fragments straight to that node,
as CMS's readout units push to the builder unit the event manager named; no fragment
passes through this service. The slot is free again when the event's outcome reaches the
collector (`done`).

A node declared dead has its undecided events assigned again: each is retried once, then
HltError, by the same rules and the same `Dispatcher` as a worker lost inside a node. A
node that comes back rejoins under a new incarnation: messages from the old one are stale.
A lost readout source makes every event that still needs its fragments sent (waiting, or
to be sent again after a node loss) MissingData; events already delivered complete are
unaffected.

The service is plain code: calls in, `Assign` and `Outcome` instructions out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trigger_sim.config import FarmConfig
from trigger_sim.dispatch import FORWARD, Dispatcher

MAX_ATTEMPTS = 2  # a node lost with the event: retried once, then HltError (as a worker lost inside a node)
HLT_ERROR = "HltError"
MISSING_DATA = "MissingData"


def credits_asked(config: FarmConfig) -> int:
    """Events a worker asks its builder for at start: one per slot (more if the builder is
    configured to hand each worker more: they wait in the socket for a free slot)."""
    return max(config.worker.slots, config.builder.credits_per_worker)


def node_slots(config: FarmConfig, workers: int) -> int:
    """Event slots a node of `workers` offers this service: what its workers hold at once
    (their credits), plus one waiting per worker at its builder, so a worker never waits for
    the next assignment."""
    return workers * (credits_asked(config) + 1)


def one_host_buffer_events(config: FarmConfig, workers: int) -> int:
    """The readout buffer of a farm on one host: no larger than what its node holds (its
    event slots and the builder's queue of complete events, `builder.max_waiting`). The
    readout and the builder share the machine; as with a readout that blocks once the builder
    stops reading, Level-1 busy (dead time) then starts when the node is full, not after
    thousands of events have queued in the readout."""
    return min(config.readout.buffer_events, node_slots(config, workers) + config.builder.max_waiting)


@dataclass(frozen=True)
class Assign:
    """Send event `l1_id`'s fragments to `node` (its `attempt`-th delivery)."""

    l1_id: int
    node: str
    attempt: int


@dataclass(frozen=True)
class Outcome:
    """Event `l1_id` ends here, without a node's decision (a debug stream)."""

    l1_id: int
    stream: str
    reason: str


@dataclass
class _Ticket:
    l1_id: int
    attempts: int = 0
    nodes: list[str] = field(default_factory=list)


class AssignmentService:
    """Assigns Level-1 accepts to nodes with free slots; reassigns a lost node's events."""

    def __init__(self, max_waiting: int):
        self._dispatch = Dispatcher(max_waiting)
        self._incarnation: dict[str, int] = {}  # node name -> current incarnation
        self._dead: set[str] = set()
        self._lost_sources: set[int] = set()
        self.assigned_per_node: dict[str, int] = {}
        self.reassigned = 0
        self.stale_done = 0

    # -- nodes -------------------------------------------------------------------------
    def _key(self, node: str) -> bytes:
        return f"{node}#{self._incarnation[node]}".encode()

    def join(self, node: str, slots: int) -> None:
        """A node (new, or back after being declared dead) offers `slots` event slots."""
        if slots < 1:
            raise ValueError(f"node {node!r} offers {slots} slots: a node needs at least one")
        if node in self._incarnation and node not in self._dead:
            raise ValueError(f"node {node!r} joined twice without being declared dead")
        self._incarnation[node] = self._incarnation.get(node, -1) + 1
        self._dead.discard(node)
        self._dispatch.add_credit(self._key(node), slots)

    def node_lost(self, node: str) -> list[Outcome]:
        """`node` is dead: its credits go, its undecided events are queued again (or end)."""
        if node not in self._incarnation or node in self._dead:
            return []
        self._dead.add(node)
        held = self._dispatch.forget_worker(self._key(node))
        out = []
        for l1_id, ticket in sorted(held.items(), reverse=True):  # requeue puts each at the head: keep id order
            ending = self._cannot_send(ticket, f"node {node} lost while building the event")
            if ending is not None:
                out.append(ending)
            else:
                self.reassigned += 1
                self._dispatch.requeue(l1_id, ticket)
        return out[::-1]

    @property
    def live_nodes(self) -> list[str]:
        return sorted(n for n in self._incarnation if n not in self._dead)

    # -- sources -----------------------------------------------------------------------
    def source_lost(self, *sources: int) -> list[Outcome]:
        """Readout sources are gone: waiting events can no longer be complete."""
        self._lost_sources.update(sources)
        return [self._missing(l1_id, "") for l1_id, _ in self._dispatch.drain_waiting()]

    def _missing(self, l1_id: int, why: str) -> Outcome:
        lost = ", ".join(f"0x{s:x}" for s in sorted(self._lost_sources))
        return Outcome(l1_id, MISSING_DATA, f"readout source {lost} lost before the event was sent" + (f" ({why})" if why else ""))

    def _cannot_send(self, ticket: _Ticket, why: str) -> Outcome | None:
        """Why an event that needs its fragments sent (again) cannot be: None if it can."""
        if self._lost_sources:
            return self._missing(ticket.l1_id, why)
        if ticket.attempts >= MAX_ATTEMPTS:
            return Outcome(ticket.l1_id, HLT_ERROR, f"{why}, after {ticket.attempts} attempts (nodes {', '.join(ticket.nodes)})")
        return None

    # -- events ------------------------------------------------------------------------
    @property
    def is_full(self) -> bool:
        """No more accepts may wait: the readout holds them (Level-1 busy when its buffer fills)."""
        return self._dispatch.is_full

    def accept(self, l1_id: int) -> Outcome | None:
        """A Level-1 accept needs a node (None), or cannot be built at all (its Outcome)."""
        if self._lost_sources:
            return self._missing(l1_id, "")
        self._dispatch.add_event(l1_id, _Ticket(l1_id))
        return None

    def assignments(self) -> list[Assign]:
        """Pair waiting accepts with free slots, oldest accept first."""
        out = []
        for key, l1_id, ticket in self._dispatch.assignments():
            node = key.decode().rsplit("#", 1)[0]
            ticket.attempts += 1
            ticket.nodes.append(node)
            self.assigned_per_node[node] = self.assigned_per_node.get(node, 0) + 1
            out.append(Assign(l1_id, node, ticket.attempts))
        return out

    def done(self, l1_id: int, node: str) -> bool:
        """The collector has event `l1_id`'s outcome from `node`: the node's slot is free.

        False (nothing changes) if that node's current incarnation does not hold the event:
        a late outcome from a node declared dead, whose event was assigned again.
        """
        if node not in self._incarnation or node in self._dead:
            self.stale_done += 1
            return False
        key = self._key(node)
        verdict, _ = self._dispatch.result(key, l1_id)
        if verdict != FORWARD:
            self.stale_done += 1
            return False
        self._dispatch.add_credit(key)
        return True

    def held_by(self, node: str) -> list[int]:
        """Events the node's current incarnation holds (assigned, no outcome yet)."""
        if node not in self._incarnation or node in self._dead:
            return []
        return sorted(self._dispatch.in_flight.get(self._key(node), {}))

    @property
    def n_waiting(self) -> int:
        return self._dispatch.n_waiting

    @property
    def n_in_flight(self) -> int:
        return self._dispatch.n_in_flight

    def drain(self, reason: str, stream: str = "NotProcessed") -> list[Outcome]:
        """At the end of the run: every accept without an outcome (waiting, or held by a node
        that never answered) leaves to `stream` (NotProcessed; MissingData when the readout
        was lost before the node had the whole event); the service holds nothing after."""
        ids = [l1_id for l1_id, _ in self._dispatch.drain_waiting()]
        for node in self.live_nodes:
            ids += self.held_by(node)
            self._dispatch.forget_worker(self._key(node))
            self._dead.add(node)
        return [Outcome(l1_id, stream, reason) for l1_id in sorted(ids)]
