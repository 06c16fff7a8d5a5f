"""Run-control states of a role and of the run, as a plain state machine (no I/O).

Every application goes through the same states, as ATLAS's and FairMQ's run control
drive theirs: INITIAL (started, not configured) -> CONFIGURED (sockets bound, endpoints
known) -> RUNNING (events flow) -> STOPPED (drained, summary sent) -> back to CONFIGURED
for another run, or to EXITED. Any state may go to ERROR (a role that died or reported a
failure); from ERROR only `reset` (back to INITIAL) or `exit` lead on. A transition not in
the table is refused with an error that names the state and the transitions it allows.
"""

from __future__ import annotations

from collections.abc import Iterable

from trigger_sim.errors import TriggerSimError

INITIAL, CONFIGURED, RUNNING, STOPPED, ERROR, EXITED = "INITIAL", "CONFIGURED", "RUNNING", "STOPPED", "ERROR", "EXITED"
STATES = (INITIAL, CONFIGURED, RUNNING, STOPPED, ERROR, EXITED)

TRANSITIONS: dict[tuple[str, str], str] = {
    (INITIAL, "configure"): CONFIGURED,
    (CONFIGURED, "start"): RUNNING,
    (RUNNING, "stop"): STOPPED,
    (STOPPED, "configure"): CONFIGURED,
    (CONFIGURED, "unconfigure"): INITIAL,
    (STOPPED, "unconfigure"): INITIAL,
    (ERROR, "reset"): INITIAL,
    **{(s, "exit"): EXITED for s in (INITIAL, CONFIGURED, STOPPED, ERROR)},
    **{(s, "fail"): ERROR for s in (INITIAL, CONFIGURED, RUNNING, STOPPED)},
}


class TransitionError(TriggerSimError):
    """A run-control command that the current state does not allow."""


def allowed(state: str) -> list[str]:
    """The commands `state` accepts."""
    return sorted(cmd for (s, cmd) in TRANSITIONS if s == state)


class RunState:
    """One role's (or the whole run's) state; `history` keeps every state it went through."""

    def __init__(self, name: str, state: str = INITIAL):
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}; states are {list(STATES)}")
        self.name = name
        self.state = state
        self.history = [state]
        self.error = ""

    def apply(self, command: str, error: str = "") -> str:
        """Take the transition `command`; return the new state or raise TransitionError."""
        new = TRANSITIONS.get((self.state, command))
        if new is None:
            raise TransitionError(f"{self.name}: '{command}' is not allowed in state {self.state} "
                                  f"(allowed: {', '.join(allowed(self.state)) or 'nothing'})")
        self.state = new
        self.history.append(new)
        if command == "fail":
            self.error = error
        return new


def all_in(states: Iterable[RunState], state: str) -> bool:
    """True when every role is in `state` (run control moves on only then)."""
    return all(s.state == state for s in states)
