"""Clock offsets between hosts, NTP-style, and latencies corrected by them (no I/O).

Each host stamps events with its own clock. Run control measures a host's offset with
request/response exchanges: it stamps the request when it leaves (t0) and the reply when
it arrives (t3), both in its own clock; the host stamps the request when it arrives (t1)
and the reply when it leaves (t2), in the host's clock. Then

    offset = ((t1 - t0) + (t2 - t3)) / 2     (host clock minus run control's clock)
    delay  = (t3 - t0) - (t2 - t1)           (the network round trip)

and whatever the split of the delay between the two directions, the true offset lies
within offset +/- delay / 2. The sample with the lowest round trip is the tightest, so it
is the one kept (as NTP's clock filter does).

A latency between a stamp taken on host A and one taken on host B is corrected into run
control's clock by each host's offset; its uncertainty is the sum of the two bounds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Exchange:
    """One request/response: t0, t3 in run control's clock; t1, t2 in the host's clock (ns)."""

    t0_ns: int
    t1_ns: int
    t2_ns: int
    t3_ns: int

    def __post_init__(self) -> None:
        if self.t3_ns < self.t0_ns or self.t2_ns < self.t1_ns:
            raise ValueError(f"clock exchange with a negative interval: {self}")

    @property
    def offset_ns(self) -> float:
        return ((self.t1_ns - self.t0_ns) + (self.t2_ns - self.t3_ns)) / 2

    @property
    def delay_ns(self) -> int:
        return max(0, (self.t3_ns - self.t0_ns) - (self.t2_ns - self.t1_ns))


@dataclass(frozen=True)
class Offset:
    """A host's clock minus run control's clock, and the bound on its error (ns)."""

    offset_ns: float
    uncertainty_ns: float
    samples: int

    def to_reference(self, host_ns: int) -> float:
        """A stamp of the host's clock in run control's clock."""
        return host_ns - self.offset_ns


ZERO = Offset(0.0, 0.0, 0)  # run control's own host: its clock is the reference


def estimate(exchanges: Iterable[Exchange]) -> Offset:
    """The offset from the lowest-round-trip exchange; raises ValueError without any."""
    samples = list(exchanges)
    if not samples:
        raise ValueError("no clock exchange with the host: cannot estimate its offset")
    best = min(samples, key=lambda e: e.delay_ns)
    return Offset(best.offset_ns, best.delay_ns / 2, len(samples))


@dataclass(frozen=True)
class Latency:
    value_ns: float
    uncertainty_ns: float


def corrected_latency(start_ns: int, start_host: Offset, end_ns: int, end_host: Offset) -> Latency:
    """`end - start` for stamps taken on two hosts, both moved into run control's clock."""
    value = end_host.to_reference(end_ns) - start_host.to_reference(start_ns)
    return Latency(value, start_host.uncertainty_ns + end_host.uncertainty_ns)
