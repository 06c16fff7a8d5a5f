"""The per-event table's row for each event the collector counts, from its messages.

Built before the ledger counts the event and never raising for any decoded message: a
field the table wants but the decision does not need (sizes, attempt, per-model paths) that
has the wrong type becomes unknown, so an optional table can never cost an event.
"""

from __future__ import annotations

import socket
from typing import Any

from trigger_sim.accounting import DEBUG
from trigger_sim.event_table import INT64_MAX, INT64_MIN, SIZES, UNKNOWN, EventRow

LOCAL_HOST = socket.gethostname()  # the workers run on run control's host (a worker may name its own: "host")


def result_row(meta: dict[str, Any], ours: dict[str, Any], steps_ms: dict[str, float], debug_reason: str) -> EventRow:
    """A worker's decision (`meta`, checked by `check_result`), the builder's metadata
    (`ours`), the event's step times (ms, the collector's) and the debug reason's category."""
    debug = meta["outcome"] == DEBUG
    paths = meta.get("inference")
    return EventRow(
        l1_id=meta["l1_id"], l1_time_ns=_int(meta.get("l1_time_ns")), decided_ns=_int(meta.get("decided_ns")),
        outcome=meta["outcome"], chains=tuple(meta["chains"]), streams=tuple(meta["streams"]),
        debug_reason=debug_reason if debug else "", debug_detail=_text(meta.get("reason")) if debug else "",
        steps_ms=steps_ms, inference_path=_text(meta.get("inference_path")) or "none",
        fallback_reason=_text(meta.get("inference_reason")),
        model_paths={str(k): _text(v) for k, v in paths.items()} if isinstance(paths, dict) else {},
        worker=_text(meta.get("worker")), host=_text(meta.get("host")) or LOCAL_HOST,
        attempt=_int(ours.get("attempt")), forced=meta.get("forced") is True,
        sizes={s: _int(meta.get(s)) for s in SIZES})


def missing_row(meta: dict[str, Any], stream: str, done_ns: int, debug_reason: str) -> EventRow:
    """An event the builder sent to a debug stream without a worker's decision: no steps,
    no sizes, no worker."""
    return EventRow(
        l1_id=_int(meta.get("l1_id")), l1_time_ns=_int(meta.get("l1_time_ns")), decided_ns=_int(done_ns), outcome=DEBUG,
        streams=(stream,), debug_reason=debug_reason, debug_detail=_text(meta.get("reason")), host=LOCAL_HOST,
        attempt=_int(meta.get("attempt")))


def _int(value: Any) -> int:
    """An integer that fits the table's 64 bits, else UNKNOWN."""
    ok = isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX
    return value if ok else UNKNOWN


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
