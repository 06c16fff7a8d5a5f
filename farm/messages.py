"""Messages between farm processes: a kind frame, a msgpack metadata frame, then the
fragments' wire frames (passed through untouched, without copies).

    EVENT   builder -> worker     meta: l1_id, l1_time_ns, times, frames per fragment
    READY   worker -> builder     meta: done (L1 id just finished, or None)
    RESULT  worker -> collector   meta: EventResult + times; fragments if written to a stream
    MISSING builder -> collector  meta: l1_id, missing sources, reason; fragments it has
    END     readout -> collector  meta: how many Level-1 accepts were sent, dead time
    STATS   any -> collector      meta: role, counters (at shutdown)
    WORKER_DIED supervisor -> builder  meta: identity of a worker process that exited
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack

EVENT = b"EVENT"
READY = b"READY"
RESULT = b"RESULT"
MISSING = b"MISSING"
END = b"END"
STATS = b"STATS"
WORKER_DIED = b"WORKER_DIED"

MAX_META_BYTES = 1 << 20


def pack_meta(meta: dict[str, Any]) -> bytes:
    return msgpack.packb(meta, use_bin_type=True)


def unpack_meta(frame: Any) -> dict[str, Any]:
    buf = frame.buffer if hasattr(frame, "buffer") else frame
    if len(buf) > MAX_META_BYTES:
        raise ValueError(f"metadata frame of {len(buf)} bytes exceeds {MAX_META_BYTES}")
    meta = msgpack.unpackb(buf, raw=False, strict_map_key=False, max_bin_len=MAX_META_BYTES, max_str_len=MAX_META_BYTES)
    if not isinstance(meta, dict):
        raise ValueError("metadata frame is not a map")
    return meta


def flatten(fragments: Sequence[Sequence[Any]]) -> tuple[list[int], list[Any]]:
    """Frames of several fragments as one list, plus how many frames each one has."""
    counts = [len(f) for f in fragments]
    return counts, [frame for f in fragments for frame in f]


def split(counts: Sequence[int], frames: Sequence[Any]) -> list[list[Any]]:
    """Inverse of `flatten`; raises ValueError if the counts do not match."""
    if sum(counts) != len(frames) or any(c < 1 for c in counts):
        raise ValueError(f"frame counts {list(counts)} do not match {len(frames)} frames")
    out, start = [], 0
    for c in counts:
        out.append(list(frames[start : start + c]))
        start += c
    return out
