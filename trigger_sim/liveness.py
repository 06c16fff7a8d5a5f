"""Which workers have gone silent: heartbeat bookkeeping without I/O.

A worker says something to its builder whenever it is free (credits, results, and a
heartbeat every `HEARTBEAT_S` while idle); its main thread is silent only while it is inside
an event. A worker silent for longer than its hard budget plus a margin is stuck (a step
that never returns, a malformed event it could not answer): it is reported once, so the
process can be killed, restarted and its event retried, instead of holding its credit for
the rest of the run.
"""

from __future__ import annotations

HEARTBEAT_S = 0.5


class Liveness:
    def __init__(self, limit_ns: int):
        if limit_ns <= 0:
            raise ValueError("limit_ns must be > 0")
        self.limit_ns = limit_ns
        self._last: dict[bytes, int] = {}
        self._reported: set[bytes] = set()

    def heard(self, worker: bytes, now_ns: int) -> None:
        """Any message from the worker: it is alive (and, if reported, no longer silent)."""
        if worker in self._reported:
            return  # reported workers stay reported: they are being replaced
        self._last[worker] = now_ns

    def forget(self, worker: bytes) -> None:
        self._last.pop(worker, None)
        self._reported.discard(worker)

    def silent(self, now_ns: int) -> list[tuple[bytes, int]]:
        """Workers silent past the limit, each reported once: (worker, silent for ns)."""
        out = [(w, now_ns - t) for w, t in self._last.items() if now_ns - t > self.limit_ns]
        for w, _ in out:
            self._reported.add(w)
            del self._last[w]
        return out
