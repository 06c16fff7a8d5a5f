"""What the readout of every run shares (`farm.readout_feed` is the readout process): its
running counters and its END to the collector, with the Level-1 ids it sent.

For each Level-1 slot (paced constant or Poisson) the readout simulates the event and sends
its fragments to the node the assignment service names. Vetoed slots (Level-1 busy, or the
readout running late) are not Level-1 accepts and do not take a Level-1 id.
"""

from __future__ import annotations


import zmq

from farm import messages
from trigger_sim import clock
from trigger_sim.id_ranges import IdRanges

RANGES_PER_MESSAGE = 5_000  # [start, stop) pairs per L1_IDS message: under 0.1 MB, far below the metadata limit
MAX_LAG_MS = 50.0  # a slot reached later than this after its time is vetoed
STATS_PERIOD_NS = 500 * clock.NS_PER_MS  # running counters to the collector (the live view's rate in and dead time)


def send_stats(collector: zmq.Socket, n_sent: int, vetoed_busy: int, vetoed_slow: int, busy_ns: int) -> None:
    """The readout's running counters to the collector (the live view's rate in and dead time)."""
    collector.send_multipart([messages.STATS, messages.pack_meta({"role": "readout", "counters": {
        "l1_accepted": n_sent, "vetoed_busy": vetoed_busy, "vetoed_slow": vetoed_slow, "busy_s": busy_ns / clock.NS_PER_S}})])


def send_end(collector: zmq.Socket, n_accepted: int, sent_ids: IdRanges, fields: dict) -> None:
    """The Level-1 ids sent (in chunks of ranges) and END with their count and `fields`
    (vetoes, dead time, faults injected, a problem): what the collector checks the ledger against."""
    chunks = sent_ids.chunks(RANGES_PER_MESSAGE)
    for index, ranges in enumerate(chunks):
        collector.send_multipart([messages.L1_IDS, messages.pack_meta({"chunk": index, "ranges": ranges})])
    collector.send_multipart([messages.END, messages.pack_meta({"l1_accepted": n_accepted, "id_chunks": len(chunks), **fields})])
