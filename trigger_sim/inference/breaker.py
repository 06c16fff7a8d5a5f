"""Circuit breaker for the inference server, without I/O (time is passed in).

CLOSED: calls go to the server; `failure_threshold` consecutive failures open it.
OPEN: calls skip the server (straight to the fallback) for `open_ns`, so a dead server
does not cost every event its full timeout.
HALF_OPEN: after that, one call probes the server; success closes the breaker, failure
opens it again for another `open_ns`. The breaker keeps probing until the server is back.
"""

from __future__ import annotations

from enum import Enum


class BreakerState(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, failure_threshold: int, open_ns: int):
        if failure_threshold < 1 or open_ns <= 0:
            raise ValueError("failure_threshold must be >= 1 and open_ns > 0")
        self.failure_threshold = failure_threshold
        self.open_ns = open_ns
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self.opened_at_ns = 0
        self.times_opened = 0
        self.probes = 0

    def allow(self, now_ns: int) -> bool:
        """May this call go to the server? (In OPEN, the first call after `open_ns` probes.)"""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN and now_ns - self.opened_at_ns >= self.open_ns:
            self.state = BreakerState.HALF_OPEN
            self.probes += 1
            return True
        return False

    def record_success(self, now_ns: int) -> None:
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0

    def record_failure(self, now_ns: int) -> None:
        self.consecutive_failures += 1
        if self.state is BreakerState.HALF_OPEN or self.consecutive_failures >= self.failure_threshold:
            if self.state is not BreakerState.OPEN:
                self.times_opened += 1
            self.state = BreakerState.OPEN
            self.opened_at_ns = now_ns

    def trip(self, now_ns: int) -> None:
        """Open at once, whatever the count (a server known to be down: not reached at start)."""
        if self.state is not BreakerState.OPEN:
            self.times_opened += 1
        self.state = BreakerState.OPEN
        self.opened_at_ns = now_ns
