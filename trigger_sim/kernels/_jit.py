"""The one place numba is configured for the feature kernels.

`cache=True` writes compiled machine code next to the modules, so a worker process loads it
from disk instead of compiling (seconds) before its first event. `nogil=True` lets kernels run
in threads; `fastmath=False` keeps IEEE semantics, so kernels agree with their numpy references.
"""

from __future__ import annotations

import functools

import numba

njit = functools.partial(numba.njit, cache=True, nogil=True, fastmath=False)
