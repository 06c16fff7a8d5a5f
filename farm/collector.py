"""Collector: receives every outcome, keeps the ledger, writes the output streams.

Runs inside the supervisor process. Every Level-1-accepted event reaches it exactly once:
a RESULT from a worker (accepted, rejected or a debug stream) or a MISSING from the
builder (MissingData). Accepted events are written to each of their streams, debug
events to their debug stream, in the recording format (`trigger_sim.recording`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import zmq

from farm import messages
from farm.sockets import bind_loopback, make_socket
from trigger_sim import clock
from trigger_sim.accounting import ACCEPTED, DEBUG, Ledger
from trigger_sim.config import FarmConfig, as_dict
from trigger_sim.errors import WireFormatError
from trigger_sim.latency import LatencyRecorder
from trigger_sim.recording import RecordWriter
from trigger_sim.wire import decode_fragment


class Collector:
    def __init__(self, ctx: zmq.Context, config: FarmConfig, output_dir: Path | None):
        self.config = config
        self.sock = make_socket(ctx, zmq.PULL, hwm=100_000)
        self.endpoint = bind_loopback(self.sock)
        self.output_dir = output_dir
        self.ledger = Ledger()
        self.latency = LatencyRecorder()
        self.writers: dict[str, RecordWriter] = {}
        self.end: dict[str, Any] | None = None
        self.builder_stats: dict[str, Any] | None = None
        self.worker_stats: dict[int, dict[str, Any]] = {}
        self.inference_paths: Counter = Counter()
        self.fallback_reasons: Counter = Counter()
        self.debug_reasons: Counter = Counter()
        self.write_errors = 0
        self.decision_digest = 0  # order-independent digest of (L1 id, chains): compares runs event by event
        self.first_decided_ns: int | None = None
        self.last_decided_ns = 0

    def poll(self, timeout_ms: int) -> int:
        """Handle what arrives within `timeout_ms` (then whatever is queued); return the count."""
        handled = 0
        if not self.sock.poll(timeout_ms):
            return 0
        while True:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return handled
            self.handle(frames)
            handled += 1

    def handle(self, frames: list) -> None:
        kind = frames[0].bytes
        meta = messages.unpack_meta(frames[1]) if len(frames) > 1 else {}
        payload = frames[2:]
        if kind == messages.RESULT:
            self._result(meta, payload)
        elif kind == messages.MISSING:
            self._missing(meta, payload)
        elif kind == messages.END:
            self.end = meta
        elif kind == messages.STATS:
            if meta.get("role") == "builder":
                self.builder_stats = meta["counters"]
            else:
                self.worker_stats[meta.get("index", len(self.worker_stats))] = meta["counters"]

    def _result(self, meta: dict[str, Any], payload: list) -> None:
        l1_id = meta["l1_id"]
        if not self.ledger.record(l1_id, meta["outcome"], meta["streams"] if meta["outcome"] == ACCEPTED else (), meta["chains"]):
            return
        self.decision_digest = (self.decision_digest + _digest(l1_id, meta["outcome"], meta["chains"])) & 0xFFFFFFFFFFFFFFFF
        if meta["outcome"] == DEBUG:
            self.debug_reasons[f"{meta['streams'][0]}: {meta['reason'].split(':')[0]}"] += 1
        path = meta.get("inference_path") or "none"
        self.inference_paths[path] += 1
        if meta.get("inference_reason"):
            self.fallback_reasons[meta["inference_reason"]] += 1
        t = meta
        steps = dict(meta["steps_ms"])
        steps["build"] = clock.ns_to_ms(t["complete_ns"] - t["l1_time_ns"])
        steps["queue"] = clock.ns_to_ms(t["dispatched_ns"] - t["complete_ns"])
        steps["transfer"] = clock.ns_to_ms(t["received_ns"] - t["dispatched_ns"])
        steps["total"] = clock.ns_to_ms(t["decided_ns"] - t["l1_time_ns"])
        self.latency.add_many(steps)
        self._decided_at(t["decided_ns"])
        if meta["frames_per_fragment"]:
            self._write(meta["streams"], l1_id, _record_meta(meta), meta["frames_per_fragment"], payload)

    def _missing(self, meta: dict[str, Any], payload: list) -> None:
        stream = meta.get("stream", "MissingData")
        if not self.ledger.record(meta["l1_id"], DEBUG, (), ()):
            return
        self.decision_digest = (self.decision_digest + _digest(meta["l1_id"], DEBUG, [stream])) & 0xFFFFFFFFFFFFFFFF
        self.debug_reasons[f"{stream}: {meta['reason']}"] += 1
        self.inference_paths["none"] += 1
        self._decided_at(meta["done_ns"])
        self._write([stream], meta["l1_id"], _record_meta(meta), meta["frames_per_fragment"], payload)

    def _decided_at(self, ns: int) -> None:
        if self.first_decided_ns is None:
            self.first_decided_ns = ns
        self.last_decided_ns = max(self.last_decided_ns, ns)

    def _write(self, streams: list[str], l1_id: int, meta: dict[str, Any], counts: list[int], payload: list) -> None:
        if self.output_dir is None or not self.config.output.write_streams:
            return
        fragments = messages.split(counts, payload) if counts else []
        good = []
        for frames in fragments:
            try:
                decode_fragment(frames)
                good.append(frames)
            except WireFormatError as err:
                meta.setdefault("dropped_fragments", []).append(str(err))
        for stream in streams:
            writer = self.writers.get(stream)
            if writer is None:
                writer = self.writers[stream] = RecordWriter(
                    self.output_dir / f"{stream}.tsrec", self.config.run.run_number, stream, as_dict(self.config))
            writer.write(l1_id, meta, good)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.sock.close(linger=0)


def _digest(l1_id: int, outcome: str, chains: list[str]) -> int:
    text = f"{l1_id}|{outcome}|{','.join(chains)}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def _record_meta(meta: dict[str, Any]) -> dict[str, Any]:
    keep = ("outcome", "streams", "chains", "reason", "inference_path", "missing_sources", "l1_time_ns")
    return {k: meta[k] for k in keep if k in meta}
