"""The one clock of trigger-sim.

All timestamps are CLOCK_MONOTONIC nanoseconds (`time.monotonic_ns`). On Linux that clock
is system-wide, so timestamps taken in different processes on the same host compare
directly: the Level-1 time stamped by the readout and the decision time stamped by a
worker give the end-to-end latency.

Across hosts the clocks differ: run control measures each host's offset
(`trigger_sim.clock_offset`) and corrects latencies that span hosts. To test that, the
environment variable TRIGGER_SIM_TEST_CLOCK_OFFSET_MS (a test-only setting) shifts this
clock by that many milliseconds in every process that inherits it, as if the host's clock
were set differently.
"""

import os
import time

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000


TEST_OFFSET_VARIABLE = "TRIGGER_SIM_TEST_CLOCK_OFFSET_MS"
_OFFSET_NS = round(float(os.environ.get(TEST_OFFSET_VARIABLE) or 0) * NS_PER_MS)


def now_ns() -> int:
    """Monotonic time in nanoseconds, comparable across processes on one host."""
    return time.monotonic_ns() + _OFFSET_NS


def now_s() -> float:
    """Monotonic time in seconds (same clock as `now_ns`)."""
    return now_ns() / NS_PER_S


def ns_to_ms(ns: int | float) -> float:
    """Convert nanoseconds to milliseconds."""
    return ns / NS_PER_MS
