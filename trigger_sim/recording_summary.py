"""What a recording file holds, as plain data: for `trigger-sim inspect` and its --json."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from trigger_sim import wire
from trigger_sim.event import Fragment
from trigger_sim.recording import RecordReader


def fragment_wire_bytes(fragment: Fragment) -> int:
    """Size of a fragment on the wire: header, one descriptor per array, array bytes."""
    arrays = fragment.arrays.values()
    return wire.HEADER_FIXED_SIZE + wire.DESCRIPTOR_SIZE * len(arrays) + sum(a.nbytes for a in arrays)


def _cut(reader: RecordReader, file_bytes: int) -> tuple[int | None, str | None]:
    """(byte offset, reason) where the file was cut short, or (None, None) when it was not."""
    if reader.truncated_at is not None:
        return reader.truncated_at, "the file ends inside a record or inside the index"
    if reader.index is None and reader.header.get("index_on_close"):
        if reader.index_problem is not None:
            return None, None  # complete but damaged trailer: reported as the index problem
        return file_bytes, "no index after the last record: the writer never closed the file"
    return None, None


def summarize(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Header fields, event and byte counts, per-source fragment sizes, index and cut state.

    Reads every record (CRCs checked); raises `RecordingError` for a corrupt file.
    """
    path = Path(path)
    reader = RecordReader(path)
    header = reader.header
    events, record_bytes, l1_ids = 0, 0, []
    per_source: dict[int, list[int]] = {}  # source id -> [fragments, bytes]
    for record in reader:
        events += 1
        record_bytes += record.nbytes
        l1_ids.append(record.l1_id)
        for fragment in record.fragments:
            entry = per_source.setdefault(fragment.header.source_id, [0, 0])
            entry[0] += 1
            entry[1] += fragment_wire_bytes(fragment)
    file_bytes = path.stat().st_size
    cut_at, cut_reason = _cut(reader, file_bytes)
    created = header.get("created_unix_s")
    return {
        "file": str(path),
        "file_bytes": file_bytes,
        "format_version": header.get("format_version"),
        "run_number": header.get("run_number"),
        "stream": header.get("stream"),
        "created_utc": (dt.datetime.fromtimestamp(created, dt.UTC).isoformat(timespec="seconds")
                        if isinstance(created, (int, float)) else None),
        "trigger_sim_version": header.get("trigger_sim_version"),
        "source": header.get("source"),
        "events": events,
        "l1_id_min": min(l1_ids) if l1_ids else None,
        "l1_id_max": max(l1_ids) if l1_ids else None,
        "record_bytes_total": record_bytes,
        "record_bytes_mean": record_bytes / events if events else 0.0,
        "sources": [
            {"source_id": f"0x{sid:x}", "fragments": count, "mean_bytes": nbytes / count}
            for sid, (count, nbytes) in sorted(per_source.items())
        ],
        "index_present": reader.index is not None,
        "index_problem": reader.index_problem,
        "cut_short": cut_at is not None,
        "cut_at_byte": cut_at,
        "cut_reason": cut_reason,
    }
