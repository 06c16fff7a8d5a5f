"""Messages between farm processes: a kind frame, a msgpack metadata frame, then the
fragments' wire frames (passed through untouched, without copies).

    EVENT     builder -> worker     meta: l1_id, l1_time_ns, times, frames per fragment
    READY     worker -> builder     meta: credits (how many more events it asks for)
    HEARTBEAT worker -> builder     meta: received (EVENT messages so far); sent while idle
    BYE       worker -> builder     meta: {} (the worker is stopping: not silent)
    RESULT    worker -> builder     meta: EventResult + its times; "forced" from the watchdog
    RESULT    builder -> collector  the worker's meta, the builder's meta (event times, frames
                                    per fragment), then the fragments if written to a stream
    MISSING   builder -> collector  meta: l1_id, missing sources, reason; fragments it has
    STALLED   builder -> collector  meta: identity of a worker silent past its budget + margin
    L1_IDS    readout -> collector  meta: chunk index, ranges [start, stop) of ids sent
    END       readout -> collector  meta: how many Level-1 accepts were sent (and in how many
                                    L1_IDS chunks), dead time
    STATS     any -> collector      meta: role, counters (workers: every second and at the end)
    WORKER_DIED host roles -> builder meta: identity of a worker process that exited

A worker's result and its release travel together, to the builder: the builder keeps the
event until the result is in, and forwards it; a worker killed before the result left has
its event retried elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack

EVENT = b"EVENT"
READY = b"READY"
HEARTBEAT = b"HEARTBEAT"
BYE = b"BYE"
STALLED = b"STALLED"
L1_IDS = b"L1_IDS"
RESULT = b"RESULT"
MISSING = b"MISSING"
END = b"END"
STATS = b"STATS"
WORKER_DIED = b"WORKER_DIED"

MAX_META_BYTES = 1 << 20
WATCHDOG_SUFFIX = "/watchdog"  # identity of a worker's watchdog connection: <worker>/watchdog


def pack_id(l1_id: int) -> bytes:
    """An event's Level-1 id as its own frame (8 bytes, little-endian): a worker can name
    the event even when the rest of the message does not decode."""
    return l1_id.to_bytes(8, "little")


def unpack_id(frame: Any) -> int:
    buf = frame.bytes if hasattr(frame, "bytes") else bytes(frame)
    if len(buf) != 8:
        raise ValueError(f"id frame of {len(buf)} bytes, expected 8")
    return int.from_bytes(buf, "little")


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
