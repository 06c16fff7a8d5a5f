"""Which roles have gone silent on the network, and which came back (no I/O).

Every role sends run control a heartbeat every `HEARTBEAT_S`; one silent for longer than
the configured limit is declared dead once (its events are then reassigned, see
`trigger_sim.assignment`). The silence bookkeeping is `trigger_sim.liveness.Liveness`,
the same as for workers inside a node; what this adds is the way back: a role declared
dead that is heard again has rejoined, and is reported so once.
"""

from __future__ import annotations

from trigger_sim.liveness import Liveness


class RoleLiveness:
    def __init__(self, limit_ns: int):
        self._live = Liveness(limit_ns)
        self.dead: set[str] = set()

    def heard(self, role: str, now_ns: int) -> bool:
        """A message from `role`: True if it had been declared dead (it rejoins now)."""
        key = role.encode()
        if role in self.dead:
            self.dead.discard(role)
            self._live.forget(key)
            self._live.heard(key, now_ns)
            return True
        self._live.heard(key, now_ns)
        return False

    def forget(self, role: str) -> None:
        """The role left on purpose (end of run): no longer watched."""
        self._live.forget(role.encode())
        self.dead.discard(role)

    def silent(self, now_ns: int) -> list[tuple[str, int]]:
        """Roles silent past the limit, each declared dead once: (role, silent for ns)."""
        out = [(key.decode(), ns) for key, ns in self._live.silent(now_ns)]
        self.dead.update(role for role, _ in out)
        return out
