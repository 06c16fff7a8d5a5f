"""Process lifecycle helpers: children die with their parent, never linger."""

from __future__ import annotations

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send `sig` to this process when its parent dies (no-op elsewhere)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def new_session_dying_with_parent() -> None:
    """`preexec_fn` for servers: own process group (clean group kill), die with the parent."""
    os.setsid()
    die_with_parent(signal.SIGTERM)


def ignore_interrupts() -> None:
    """Children ignore Ctrl-C (sent to the whole terminal process group): run control
    alone decides how the farm stops, so in-flight events are drained, not dropped."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
