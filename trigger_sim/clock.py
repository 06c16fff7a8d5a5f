"""The one clock of trigger-sim.

All timestamps are CLOCK_MONOTONIC nanoseconds (`time.monotonic_ns`). On Linux that clock
is system-wide, so timestamps taken in different processes on the same host compare
directly: the Level-1 time stamped by the readout and the decision time stamped by a
worker give the end-to-end latency.
"""

import time

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000


def now_ns() -> int:
    """Monotonic time in nanoseconds, comparable across processes on one host."""
    return time.monotonic_ns()


def now_s() -> float:
    """Monotonic time in seconds (same clock as `now_ns`)."""
    return time.monotonic_ns() / NS_PER_S


def ns_to_ms(ns: int | float) -> float:
    """Convert nanoseconds to milliseconds."""
    return ns / NS_PER_MS
