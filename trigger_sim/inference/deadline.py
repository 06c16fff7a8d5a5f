"""Time left before an inference call's deadline: one helper for the service, the client and
its shared-memory transport, so all three agree on what "no time left" means."""

from __future__ import annotations

from trigger_sim import clock
from trigger_sim.errors import InferenceTimeout


def left_s(deadline_ns: int, now_ns: int) -> float:
    """Seconds from `now_ns` to `deadline_ns`; zero or negative once the deadline is reached."""
    return (deadline_ns - now_ns) / clock.NS_PER_S


def require_left_s(deadline_ns: int, now_ns: int, what: str) -> float:
    """Seconds left before the deadline (> 0); InferenceTimeout("<what>: ...") when none are."""
    left = left_s(deadline_ns, now_ns)
    if left <= 0:
        raise InferenceTimeout(f"{what}: no time left before the deadline")
    return left
