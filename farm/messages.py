"""Messages between farm processes: a kind frame, a msgpack metadata frame, then the
fragments' wire frames (passed through untouched, without copies).

    EVENT     builder -> worker     one or more events: their Level-1 ids (one frame, 8 bytes
                                    each), meta {"events": [per event: l1_time_ns, times,
                                    frames per fragment, where in the ring]}, then the frames
                                    of the events sent inside the message, in order
    READY     worker -> builder     meta: credits (how many more events it asks for)
    HEARTBEAT worker -> builder     meta: received (events so far); sent while idle
    BYE       worker -> builder     meta: {} (the worker is stopping: not silent)
    RESULT    worker -> builder     one meta frame per decision: EventResult + its times;
                                    "forced" from the watchdog
    RESULT    builder -> collector  per event: the worker's meta, the builder's meta (event
                                    times, frames per fragment), then the fragments if written
                                    to a stream; one or more events, one after the other
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

Under load, EVENT and RESULT messages carry several events: whatever is ready in one pass
of a loop goes in one message (nothing waits to fill a batch, so a lone event travels
alone, at once). Every event keeps its own metadata and stamps; the batch only saves the
per-message cost (a send, a receive and a wake-up of each ZeroMQ I/O thread).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
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


def frame_bytes(frame: Any) -> bytes:
    """A received part's bytes, whether it came as a zmq.Frame (copy=False) or as bytes."""
    return frame.bytes if hasattr(frame, "bytes") else bytes(frame)


def unpack_id(frame: Any) -> int:
    buf = frame_bytes(frame)
    if len(buf) != 8:
        raise ValueError(f"id frame of {len(buf)} bytes, expected 8")
    return int.from_bytes(buf, "little")


def pack_ids(l1_ids: Sequence[int]) -> bytes:
    """Several Level-1 ids as one frame (8 bytes each, little-endian)."""
    return struct.pack(f"<{len(l1_ids)}Q", *l1_ids)


def unpack_ids(frame: Any) -> list[int]:
    buf = frame_bytes(frame)
    if not buf or len(buf) % 8:
        raise ValueError(f"id frame of {len(buf)} bytes, expected a non-zero multiple of 8")
    return list(struct.unpack(f"<{len(buf) // 8}Q", buf))


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


# -- several events per message -------------------------------------------------------------
def event_message(l1_ids: Sequence[int], metas: Sequence[dict[str, Any]], inline: Sequence[Sequence[Any]]) -> list[Any]:
    """The EVENT message for one or more events (after the worker's identity on a ROUTER).

    `metas[i]` describes `l1_ids[i]`; `inline[i]` holds the frames of an event sent inside
    the message (empty when its bytes are in the ring: its meta says where)."""
    if not len(l1_ids) == len(metas) == len(inline) or not l1_ids:
        raise ValueError(f"{len(l1_ids)} ids, {len(metas)} metas, {len(inline)} inline frame lists")
    for meta, frames in zip(metas, inline):
        meta["inline_frames"] = len(frames)
    return [EVENT, pack_ids(l1_ids), pack_meta({"events": list(metas)}), *(f for frames in inline for f in frames)]


@dataclass
class ReceivedEvent:
    """One event of an EVENT message, as the worker reads it: its meta and the frames sent
    inside the message (none when its bytes are in the ring), or why it cannot be read."""

    l1_id: int
    meta: dict[str, Any] | None
    inline: list[Any]
    error: Exception | None = None


def read_event_message(parts: Sequence[Any]) -> list[ReceivedEvent]:
    """The events of an EVENT message (the parts after the kind frame: ids, meta, frames).

    Raises ValueError only when not even the ids can be read (no event can be named); an
    event whose metadata or frames do not add up comes back with `error` set, so the worker
    can answer it (HltError) instead of skipping it."""
    if not parts:
        raise ValueError("EVENT message without its id frame")
    l1_ids = unpack_ids(parts[0])
    try:
        if len(parts) < 2:
            raise ValueError("EVENT message without metadata")
        metas = unpack_meta(parts[1]).get("events")
        if not isinstance(metas, list) or len(metas) != len(l1_ids) or not all(isinstance(m, dict) for m in metas):
            raise ValueError(f"EVENT metadata does not describe its {len(l1_ids)} events")
        counts = [m.get("inline_frames", 0) for m in metas]
        if not all(type(c) is int and c >= 0 for c in counts) or sum(counts) != len(parts) - 2:
            raise ValueError(f"EVENT inline frame counts {counts} do not match {len(parts) - 2} frames")
    except (ValueError, TypeError) as err:  # msgpack raises ValueError subclasses
        return [ReceivedEvent(l1_id, None, [], err) for l1_id in l1_ids]
    out, at = [], 2
    for l1_id, meta, n in zip(l1_ids, metas, counts):
        out.append(ReceivedEvent(l1_id, meta, list(parts[at:at + n])))
        at += n
    return out


def count_events(parts: Sequence[Any]) -> int:
    """How many events an EVENT message whose ids cannot be read says it carries (its
    metadata's count; 1 when that cannot be read either), so a worker can count them as
    received and ask for as many again."""
    try:
        metas = unpack_meta(parts[1])["events"]
        return len(metas) if isinstance(metas, list) and metas else 1
    except (ValueError, TypeError, KeyError, IndexError):
        return 1


def split_results(frames: Sequence[Any]) -> tuple[list[list[Any]], str]:
    """A builder's RESULT message as one message per event, each ``[kind, worker meta,
    builder meta, *fragments]`` (the kind frame as received), and what stopped the split
    (empty if nothing): the events before a malformed one still count."""
    out: list[list[Any]] = []
    at = 1
    while at < len(frames) or not out:
        if len(frames) - at < 2:
            return out, f"RESULT: event {len(out)} without the builder's metadata"
        try:
            ours = unpack_meta(frames[at + 1])
            counts = ours.get("frames_per_fragment", [])
            n = sum(counts) if isinstance(counts, list) and all(type(c) is int and c > 0 for c in counts) else -1
            if n < 0 or at + 2 + n > len(frames):
                raise ValueError(f"frames per fragment {counts!r:.80}, {len(frames) - at - 2} frames left")
        except (ValueError, TypeError) as err:  # msgpack raises ValueError subclasses
            return out, f"RESULT: event {len(out)}: {type(err).__name__}: {err}"[:200]
        out.append([frames[0], *frames[at:at + 2 + n]])
        at += 2 + n
    return out, ""
