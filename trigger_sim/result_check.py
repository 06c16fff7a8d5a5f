"""The checks a worker's decision passes before anything counts it (pure).

The builder checks a result before it releases the event (a malformed result sends the
event to HltError instead, so it is not lost), and the collector checks it again before
counting: both use this one definition.
"""

from __future__ import annotations

from typing import Any

from trigger_sim.accounting import DEBUG, OUTCOMES


def check_result(meta: Any) -> dict[str, Any]:
    """The decision in `meta` with its fields typed; ValueError saying what is wrong."""
    if not isinstance(meta, dict):
        raise ValueError(f"result metadata is a {type(meta).__name__}, not a map")
    try:
        l1_id = meta["l1_id"]
        outcome = meta["outcome"]
        streams, chains, steps = meta["streams"], meta["chains"], meta["steps_ms"]
        times = {k: meta[k] for k in ("received_ns", "decided_ns")}
    except KeyError as err:
        raise ValueError(f"result without {err.args[0]!r}") from None
    if not isinstance(l1_id, int) or isinstance(l1_id, bool) or l1_id < 0:
        raise ValueError(f"result l1_id {l1_id!r} is not a non-negative integer")
    if not isinstance(streams, list) or not isinstance(chains, list) or not isinstance(steps, dict):
        raise ValueError(f"event {l1_id}: streams, chains must be lists and steps_ms a map")
    if outcome not in OUTCOMES or (outcome == DEBUG and not streams):
        raise ValueError(f"event {l1_id}: outcome {outcome!r} with streams {streams}")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in times.values()):
        raise ValueError(f"event {l1_id}: times {times} are not integers (ns)")
    for key in ("reason", "inference_path", "inference_reason", "worker"):
        if key in meta and not isinstance(meta[key], str):
            raise ValueError(f"event {l1_id}: {key} is a {type(meta[key]).__name__}, not text")
    try:
        steps_ms = {str(k): float(v) for k, v in steps.items()}
    except (TypeError, ValueError):
        raise ValueError(f"event {l1_id}: steps_ms values are not numbers") from None
    return {**meta, "l1_id": l1_id, "streams": [str(s) for s in streams], "chains": [str(c) for c in chains],
            "steps_ms": steps_ms}
