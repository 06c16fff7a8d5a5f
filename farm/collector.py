"""Collector: receives every outcome, keeps the ledger, writes the output streams.

Runs inside run control's process. Every Level-1-accepted event reaches it exactly once
as far as the ledger is concerned: a RESULT from a worker (accepted, rejected or a debug
stream) or a MISSING from the builder (MissingData, NotProcessed, HltError); a second
outcome for the same event is refused and counted. Accepted events are written to each of
their streams, debug events to their debug stream, in the recording format. A malformed
message or a failed write is counted, never fatal.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from farm import messages
from farm.event_rows import missing_row, result_row
from farm.security import Curve
from farm.sockets import bind, make_socket
from trigger_sim import clock
from trigger_sim.accounting import ACCEPTED, DEBUG, Ledger
from trigger_sim.config import FarmConfig, as_dict
from trigger_sim.errors import WireFormatError
from trigger_sim.event_table import EventRow, EventTable
from trigger_sim.id_ranges import IdRanges, parse_ranges
from trigger_sim.latency import LatencyRecorder
from trigger_sim.metrics import SupervisorMetrics
from trigger_sim.recording import RecordWriter
from trigger_sim.result_check import check_result
from trigger_sim.wire import decode_fragment


MAX_PER_POLL = 1000


class BadMessage(ValueError):
    pass


class Collector:
    def __init__(self, ctx: zmq.Context, config: FarmConfig, output_dir: Path | None, curve: Curve | None = None,
                 events: EventTable | None = None, metrics: SupervisorMetrics | None = None):
        """`events`: the per-event table to fill (one row per event the ledger counts), or None;
        `metrics`: the Prometheus counters and histograms to update with each counted event."""
        self.config = config
        self.events = events
        self.metrics = metrics
        self.curve = curve
        self.sock = make_socket(ctx, zmq.PULL, hwm=1000)
        self.endpoint = bind(self.sock, config.network.bind_address, curve)
        self.output_dir = output_dir
        self.ledger = Ledger()
        self.latency = LatencyRecorder()
        self.writers: dict[str, RecordWriter] = {}
        self.end: dict[str, Any] | None = None  # the readout's END, once every id chunk it announced is in
        self._end_pending: dict[str, Any] | None = None  # END read before all of its id chunks
        self._id_chunks: dict[int, list[tuple[int, int]]] = {}
        self.l1_ids: IdRanges | None = None
        self.stalled: list[dict[str, Any]] = []  # workers the builder reported silent, to kill
        self.bad_message_kinds: Counter = Counter()
        self.builder_stats: dict[str, Any] | None = None
        self.metrics_errors = 0  # events the Prometheus metrics could not count (the ledger did): in the summary
        self.metrics_error_text = ""
        self.readout_stats: dict[str, Any] = {}  # the readout's running counters (Level-1 accepts, vetoes), for the live view
        self.worker_stats: dict[str, dict[str, Any]] = {}
        self.inference_paths: Counter = Counter()
        self.decided_by_worker: Counter = Counter()  # events each worker identity decided (forced included)
        self.fallback_reasons: Counter = Counter()
        self.debug_reasons: Counter = Counter()
        self.bad_messages = 0
        self.duplicate_sources: list[tuple] = []  # (l1_id, sender, ..): refused second outcomes
        self.write_errors = 0
        self.write_error_texts: list[str] = []
        self.decision_digest = 0  # order-independent digest of (L1 id, outcome, chains): compares runs event by event
        self.timeline_ns = array("q")  # decision time of each worker-decided event, for windows
        self.timeline_total_ms = array("d")
        self.first_decided_ns: int | None = None
        self.last_decided_ns = 0

    def expected_ids(self) -> IdRanges | None:
        """The Level-1 ids the readout sent (its END and id chunks), or None before they arrived."""
        return self.l1_ids if self.end is not None else None

    def n_unaccounted(self) -> int | None:
        ids = self.expected_ids()
        return None if ids is None else self.ledger.lost_in_ranges(ids.ranges)

    def poll(self, timeout_ms: int, max_messages: int = MAX_PER_POLL) -> int:
        """Handle what arrives within `timeout_ms`, then what is queued, up to `max_messages`
        (so run control's own checks still run under a flood); return the count."""
        handled = 0
        if not self.sock.poll(timeout_ms):
            return 0
        while handled < max_messages:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return handled
            self.handle_each(frames)
            handled += 1
        return handled

    def handle_each(self, frames: list, handle: Callable[[list], None] | None = None) -> None:
        """One message, a builder's RESULT with several events one event at a time
        (`handle`, default `self.handle`): a malformed event is counted and dropped, never
        fatal, and the other events of its message still count."""
        handle = handle or self.handle
        one_each, problem = [frames], ""
        if len(frames) > 3 and messages.frame_bytes(frames[0]) == messages.RESULT:
            one_each, problem = messages.split_results(frames)
        for one in one_each:
            try:
                handle(one)
            except Exception as err:  # any malformed message is counted and dropped, never fatal
                self.count_bad(err)
        if problem:
            self.count_bad(BadMessage(problem))

    def count_bad(self, err: Exception) -> None:
        self.bad_messages += 1
        self.bad_message_kinds[f"{type(err).__name__}: {str(err)[:80]}"] += 1

    def handle(self, frames: list) -> None:
        if len(frames) < 2:
            raise BadMessage("message without metadata")
        kind = frames[0].bytes
        meta = messages.unpack_meta(frames[1])
        payload = frames[2:]
        if kind == messages.RESULT:
            self._result(meta, payload)
        elif kind == messages.MISSING:
            self._missing(meta, payload)
        elif kind == messages.L1_IDS:
            index = meta["chunk"]
            if not isinstance(index, int) or index < 0:
                raise BadMessage(f"L1_IDS: chunk {index!r}")
            self._id_chunks[index] = parse_ranges(meta["ranges"])
            self._complete_end()
        elif kind == messages.END:
            n, chunks = meta["l1_accepted"], meta["id_chunks"]
            if not isinstance(n, int) or not isinstance(chunks, int) or n < 0 or chunks < 0:
                raise BadMessage(f"END: l1_accepted {n!r}, id_chunks {chunks!r}")
            self._end_pending = dict(meta)
            self._complete_end()
        elif kind == messages.STATS:
            counters = meta["counters"]
            if not isinstance(counters, dict):
                raise BadMessage("STATS: counters is not a map")
            if meta.get("role") == "builder":
                self.builder_stats = counters
            elif meta.get("role") == "readout":
                self.readout_stats = counters
            else:  # cumulative, sent every second: the latest replaces the previous
                self.worker_stats[str(meta.get("identity"))] = counters
        elif kind == messages.STALLED:
            self.stalled.append({"identity": str(meta["identity"]), "silent_s": float(meta["silent_s"])})
        else:
            raise BadMessage(f"unknown message kind {kind[:16]!r}")

    @property
    def id_chunks_received(self) -> int:
        return len(self._id_chunks)

    def _complete_end(self) -> None:
        """END counts once every id chunk it announced is in, and the ids add up."""
        end = self._end_pending
        if end is None or len(self._id_chunks) < end["id_chunks"]:
            return
        ids = IdRanges(r for i in range(end["id_chunks"]) for r in self._id_chunks[i])
        if len(ids) != end["l1_accepted"]:
            self._end_pending = None
            raise BadMessage(f"END: {end['l1_accepted']} Level-1 accepts but the id chunks hold {len(ids)} ids")
        self.l1_ids, self.end = ids, end

    def _result(self, meta: dict[str, Any], payload: list) -> None:
        # Validate and compute everything that can fail before counting anything: the
        # worker's decision, what the builder added (the event's times and the frames of its
        # fragments), the latencies and the record's metadata.
        meta = check_result(meta)
        if not payload:
            raise BadMessage(f"event {meta['l1_id']}: RESULT without the builder's metadata")
        ours = messages.unpack_meta(payload[0])
        meta.update({k: int(ours[k]) for k in ("l1_time_ns", "first_ns", "complete_ns", "dispatched_ns")})
        l1_id, outcome, streams, chains = meta["l1_id"], meta["outcome"], meta["streams"], meta["chains"]
        steps = dict(meta["steps_ms"])
        times = {k: int(meta[k]) for k in ("l1_time_ns", "first_ns", "complete_ns", "dispatched_ns", "received_ns", "decided_ns")}
        counts = [int(c) for c in ours.get("frames_per_fragment", [])]
        fragments = messages.split(counts, payload[1:]) if counts else []
        # assign: the accept waits in the readout until the assignment service names a node
        # with a free slot, then its fragments travel; build: first fragment to complete
        steps["assign"] = clock.ns_to_ms(times["first_ns"] - times["l1_time_ns"])
        steps["build"] = clock.ns_to_ms(times["complete_ns"] - times["first_ns"])
        steps["queue"] = clock.ns_to_ms(times["dispatched_ns"] - times["complete_ns"])
        steps["transfer"] = clock.ns_to_ms(times["received_ns"] - times["dispatched_ns"])
        steps["total"] = clock.ns_to_ms(times["decided_ns"] - times["l1_time_ns"])
        record_meta = _record_meta(meta)
        reason = str(meta.get("reason", "")).split(":")[0]
        row = self._event_row(l1_id, result_row, meta, ours, steps, reason)
        if not self.ledger.record(l1_id, outcome, streams if outcome == ACCEPTED else (), chains):
            self.duplicate_sources.append((l1_id, "result", meta.get("worker"), outcome, str(meta.get("reason", ""))[:80]))
            return
        # counted: from here on nothing may raise before the event is written
        self._add_digest(l1_id, outcome, chains if outcome != DEBUG else streams)
        self.decided_by_worker[str(meta.get("worker"))] += 1
        if outcome == DEBUG:
            self.debug_reasons[f"{streams[0]}: {reason}"] += 1
        self.inference_paths[meta.get("inference_path") or "none"] += 1
        if meta.get("inference_reason"):
            self.fallback_reasons[meta["inference_reason"]] += 1
        self.latency.add_many(steps)
        self._decided_at(times["decided_ns"])
        self.timeline_ns.append(times["decided_ns"])
        self.timeline_total_ms.append(steps["total"])
        self._add_row(row)
        self._observe(outcome, chains, streams if outcome == ACCEPTED else (), streams[0] if outcome == DEBUG else "",
                      meta.get("inference_path") or "none", meta.get("inference_reason") or "", meta.get("inference"), steps)
        if fragments:
            self._write(streams, l1_id, record_meta, fragments)

    def _missing(self, meta: dict[str, Any], payload: list) -> None:
        l1_id, stream = int(meta["l1_id"]), str(meta.get("stream", "MissingData"))
        counts = [int(c) for c in meta.get("frames_per_fragment", [])]
        fragments = messages.split(counts, payload) if counts else []
        done_ns = int(meta["done_ns"])
        record_meta = _record_meta(meta)
        reason = str(meta.get("reason", "")).split(" (")[0]
        row = self._event_row(l1_id, missing_row, meta, stream, done_ns, reason)
        if not self.ledger.record(l1_id, DEBUG, (), ()):
            self.duplicate_sources.append((l1_id, "builder", stream, DEBUG, str(meta.get("reason", ""))[:80]))
            return
        self._add_digest(l1_id, DEBUG, [stream])
        self.debug_reasons[f"{stream}: {reason}"] += 1
        self.inference_paths["none"] += 1
        self._decided_at(done_ns)
        self._add_row(row)
        self._observe(DEBUG, (), (), stream, "none", "", None, None)
        self._write([stream], l1_id, record_meta, fragments)

    def _event_row(self, l1_id: int, build: Callable[..., EventRow], *args: Any) -> EventRow | None:
        """The event's table row, built before the ledger counts it: None without a table, or
        when it cannot be built (counted as a failed write; the event itself still counts)."""
        if self.events is None:
            return None
        try:
            return build(*args)
        except Exception as err:
            self._table_error(l1_id, err)
            return None

    def _add_row(self, row: EventRow | None) -> None:
        """Append the counted event's row; never raises (a failure is a failed write)."""
        if row is None or self.events is None:
            return
        try:
            self.events.add(row)
        except Exception as err:
            self._table_error(row.l1_id, err)

    def _table_error(self, l1_id: int, err: Exception) -> None:
        self.write_errors += 1
        if len(self.write_error_texts) < 5:
            self.write_error_texts.append(f"events table: event {l1_id}: {type(err).__name__}: {err}"[:200])

    def _observe(self, outcome: str, chains, streams, debug_stream: str, path: str, reason: str, model_paths, steps) -> None:
        """The counted event in the Prometheus metrics; never raises (the event already counts)."""
        if self.metrics is None:
            return
        try:
            self.metrics.event_decided(outcome, chains, streams, debug_stream, path, reason,
                                       model_paths if isinstance(model_paths, dict) else None, steps)
        except Exception as err:
            self.metrics_errors += 1
            self.metrics_error_text = f"{type(err).__name__}: {err}"[:200]

    def _add_digest(self, l1_id: int, outcome: str, names: list[str]) -> None:
        text = f"{l1_id}|{outcome}|{','.join(names)}".encode()
        self.decision_digest = (self.decision_digest + int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")) & (2**64 - 1)

    def _decided_at(self, ns: int) -> None:
        self.first_decided_ns = ns if self.first_decided_ns is None else min(self.first_decided_ns, ns)
        self.last_decided_ns = max(self.last_decided_ns, ns)

    def _write(self, streams: list[str], l1_id: int, meta: dict[str, Any], fragments: list[list]) -> None:
        if self.output_dir is None or not self.config.output.write_streams:
            return
        for stream in streams:
            try:
                writer = self.writers.get(stream)
                if writer is None:
                    writer = self.writers[stream] = RecordWriter(
                        self.output_dir / f"{stream}.tsrec", self.config.run.run_number, stream, as_dict(self.config))
                try:
                    writer.write(l1_id, meta, fragments)
                except WireFormatError as err:  # keep the event, without the fragment that does not decode
                    good = [f for f in fragments if _decodes(f)]
                    writer.write(l1_id, {**meta, "dropped_fragments": f"{len(fragments) - len(good)}: {err}"}, good)
            except Exception as err:  # counted, never raised: the event is already in the ledger
                self.write_errors += 1
                if len(self.write_error_texts) < 5:
                    self.write_error_texts.append(f"{stream}: event {l1_id}: {type(err).__name__}: {err}"[:200])

    @property
    def refused_peers(self) -> int:
        """Distinct client keys refused by CURVE authentication in this process."""
        return self.curve.refused_peers if self.curve else 0

    def close(self) -> None:
        for writer in self.writers.values():
            try:
                writer.close()
            except OSError:
                self.write_errors += 1
        self.sock.close(linger=0)


def _decodes(frames: list) -> bool:
    try:
        decode_fragment(frames)
        return True
    except WireFormatError:
        return False


def _record_meta(meta: dict[str, Any]) -> dict[str, Any]:
    keep = ("outcome", "streams", "chains", "reason", "inference_path", "missing_sources", "l1_time_ns", "stream")
    return {k: meta[k] for k in keep if k in meta}
