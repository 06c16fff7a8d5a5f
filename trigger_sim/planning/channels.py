"""A client's connection to one inference server as gRPC keeps it, for the model (no I/O).

A worker reaches a server over a gRPC channel. When the server dies the channel is lost,
and gRPC tries to connect again on its own schedule, the connection backoff of gRPC's
`doc/connection-backoff.md` as grpc-core's `BackOff` implements it: the first attempt a
backoff after the failure (1 s by default), each next one the backoff times a multiplier
later (1.6), every wait, the first included, jittered by up to ±jitter (0.2), never more
than a maximum (120 s). Between attempts a call fails at once
(UNAVAILABLE), whether the server is back or not, so a restarted server gets calls again
only from the first attempt after it is up, and then from the breaker's next probe. On
this host (`scripts/rejoin_after_restart.py`, 2026-12-06 12:44 UTC) servers ready 1.2-2.2 s
after their kill answered again at 3.2 s (the attempt at 2.6 s), those ready at 2.7-5.0 s at
5.1-6.3 s (5.2 s), the one ready at 6.0 s at 10.2 s (9.3 s).

`initial_ms = 0` is a channel that connects the moment the server is up (no backoff).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Backoff:
    """gRPC's connection backoff (its defaults); times in ms."""

    initial_ms: float = 1000.0
    multiplier: float = 1.6
    jitter: float = 0.2
    max_ms: float = 120_000.0


def client_backoff(reconnect_backoff_ms: float) -> Backoff:
    """The backoff of a farm client with `inference.reconnect_backoff_ms`: gRPC's own for 0,
    else initial and maximum both that long (gRPC's multiplier and jitter kept)."""
    if reconnect_backoff_ms <= 0:
        return Backoff()
    return Backoff(initial_ms=reconnect_backoff_ms, max_ms=reconnect_backoff_ms)


class Channel:
    """One client's channel to one server: connected, or lost and waiting for its next
    connection attempt. Time is passed in (ms)."""

    def __init__(self, backoff: Backoff, rng: np.random.Generator):
        self.backoff, self.rng = backoff, rng
        self.connected = True
        self.next_attempt_ms = 0.0
        self.current_ms = 0.0
        self.attempts = 0  # connection attempts after a loss, failed or not
        self.reconnected_ms: list[float] = []  # when each lost connection came back

    def _wait_ms(self) -> float:
        j = self.backoff.jitter
        return self.current_ms * (1.0 + j * (2.0 * self.rng.random() - 1.0)) if j > 0 else self.current_ms

    def lost(self, now_ms: float) -> None:
        """A call found the server gone: the connection attempt made then failed; the next
        one is a backoff later. (A channel already lost keeps its schedule.)"""
        if self.connected and self.backoff.initial_ms > 0:
            self.connected = False
            self.current_ms = min(self.backoff.initial_ms, self.backoff.max_ms)
            self.next_attempt_ms = now_ms + self._wait_ms()

    def usable(self, now_ms: float, up_since_ms: float | None) -> bool:
        """Is the channel connected at `now_ms` (a call may go; it still fails if the server
        died since)? `up_since_ms`: when the server last came up (None: it is down).
        Attempts due by now are made in turn; the first one at or after the server came up
        connects."""
        while not self.connected and self.next_attempt_ms <= now_ms:
            self.attempts += 1
            if up_since_ms is not None and self.next_attempt_ms >= up_since_ms:
                self.connected = True
                self.reconnected_ms.append(self.next_attempt_ms)
                break
            self.current_ms = min(self.current_ms * self.backoff.multiplier, self.backoff.max_ms)
            self.next_attempt_ms += self._wait_ms()
        return self.connected
