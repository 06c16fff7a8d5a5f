"""Log each kind of failure once: the first occurrence says what happened, repeats stay quiet.

Why: a failure that repeats on every event (a client bug, a misbehaving server) would
otherwise either vanish (counted without its text) or flood the terminal. A kind is the
exception's type plus its message with the numbers masked, so "no answer within 73.2 ms"
and "... 81.5 ms" are one kind.
"""

from __future__ import annotations

import logging
import re
import threading

SHORT_MESSAGE_CHARS = 120
MAX_KINDS = 100  # beyond this many kinds, nothing more is logged (one last line says so)
_NUMBER = re.compile(r"\d+(\.\d+)?")


def describe(err: BaseException, limit: int = 200) -> str:
    """'Type: message', cut to `limit` characters."""
    return f"{type(err).__name__}: {err}"[:limit]


def kind_of(err: BaseException) -> str:
    """The exception's type and its short message with numbers masked."""
    return f"{type(err).__name__}: {_NUMBER.sub('#', str(err))[:SHORT_MESSAGE_CHARS]}"


class OnceLog:
    """Logs a warning for the first exception of each kind. Thread-safe."""

    def __init__(self, logger: logging.Logger, max_kinds: int = MAX_KINDS):
        self.logger = logger
        self.max_kinds = max_kinds
        self.kinds: set[str] = set()
        self.full = False  # max_kinds reached: nothing more is logged
        self._lock = threading.Lock()

    def exception(self, err: BaseException, context: str) -> bool:
        """Log `err` if its kind is new; True when it was logged."""
        kind = kind_of(err)
        with self._lock:
            if kind in self.kinds or self.full:
                return False
            if len(self.kinds) >= self.max_kinds:
                self.full = True
                self.logger.warning("%s: %d kinds of failure logged; no more will be", context, self.max_kinds)
                return False
            self.kinds.add(kind)
        self.logger.warning("%s: %s (logged once per kind)", context, describe(err, 500))
        return True
