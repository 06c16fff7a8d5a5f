"""Run control of a farm across hosts (`trigger-sim run --topology FILE`).

Node agents (`trigger-sim node`) connect to run control and heartbeat. Run control
measures each host's clock offset, brings the roles through their states (CONFIGURE: the
Triton host, then the nodes, then the readout; START; STOP), runs the central assignment
service (`trigger_sim.assignment`: Level-1 ids and credits only, no fragment passes here)
and the collector, and gathers the summary.

Each node's builder and workers send their outcomes to their own socket here, so run
control knows which node decided an event: an outcome counts only if that node's current
incarnation holds the event (a late outcome of a node declared dead, whose events were
assigned again, is stale and dropped), and its time stamps are moved from the node's and
the readout host's clocks into run control's before the collector computes latencies.

A host silent past the topology's heartbeat timeout is declared dead: a node's events are
assigned again (retried once, then HltError), a lost readout host makes what it can no
longer send MissingData. A node heard again rejoins with fresh slots.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from farm import control_messages as cm
from farm import messages
from farm.collector import Collector
from farm.readout import RANGES_PER_MESSAGE
from farm.security import Curve
from farm.sockets import bind, make_socket
from farm.metrics_http import serve
from farm.summary import LATENCY_ORDER, summarise
from farm.run_output import events_table_path, prepare_output, write_events_table
from farm.run_watch import Interrupts, Progress, drain_timeout_s, progress_reading, run_input
from trigger_sim import clock
from trigger_sim.assignment import MISSING_DATA, AssignmentService, Outcome
from trigger_sim.clock_offset import ZERO, Exchange, Offset, estimate
from trigger_sim.config import FarmConfig
from trigger_sim.errors import TriggerSimError
from trigger_sim.event_table import EventTable
from trigger_sim.event_table_io import check_writable
from trigger_sim.id_ranges import IdRanges
from trigger_sim.metrics import SUPERVISOR, SupervisorMetrics
from trigger_sim.partition import source_ids
from trigger_sim.role_liveness import RoleLiveness
from trigger_sim.run_states import RunState
from trigger_sim.topology import HostSpec, Topology, config_for_host

POLL_MS = 20
CLOCK_ROUNDS = 8  # exchanges per host before the run; more follow every CLOCK_PERIOD_S
CLOCK_PERIOD_S = 1.0
HOSTS_TIMEOUT_S = 60.0  # for every agent to say hello
CONFIGURE_TIMEOUT_S = 180.0  # a Triton server and every worker warming up
STOP_TIMEOUT_S = 30.0
STOP_LATE_S = 0.5  # after every host stopped: how long late results and acknowledgements may still arrive
READOUT_END_GRACE_S = 1.0  # a dead readout's END may be behind its last messages: wait this long for it


@dataclass
class Host:
    """What run control knows of one host."""

    spec: HostSpec
    state: RunState
    exchanges: list[Exchange] = field(default_factory=list)
    seen: bool = False
    lost: bool = False
    rejoins: int = 0
    configured: dict[str, Any] | None = None
    stopped: dict[str, Any] | None = None
    failed: str = ""
    results: zmq.Socket | None = None  # a node's outcomes
    results_endpoint: str = ""
    builder_stats: dict[str, Any] = field(default_factory=dict)
    restarts_counted: int = 0  # the host's worker restarts already added to the run's metrics

    @property
    def offset(self) -> Offset | None:
        return estimate(self.exchanges) if self.exchanges else None


class RunControl:
    def __init__(self, topology: Topology, config: FarmConfig, output_dir: Path | None, table_path: Path | None = None,
                 metrics: SupervisorMetrics | None = None):
        """`metrics`: the run's Prometheus counters, updated by the collector with each counted event (None: none)."""
        self.topology = topology
        rc_host = topology.run_control_host
        self.config = config_for_host(config, topology, rc_host.name)
        self.ctx = zmq.Context()
        self.curve = Curve.from_config(self.config.network)
        self.control = make_socket(self.ctx, zmq.ROUTER, hwm=100_000)
        self.control.setsockopt(zmq.ROUTER_MANDATORY, 0)
        if self.curve is not None:
            self.curve.secure_server(self.control)
        try:
            self.control.bind(topology.control_endpoint)
        except zmq.ZMQError as err:
            self.control.close(linger=0)
            if self.curve is not None:
                self.curve.close()  # its authenticator's sockets would keep term() waiting
            self.ctx.term()
            raise TriggerSimError(
                f"run control cannot listen on {topology.control_endpoint}: {err}. Another process holds the port, "
                f"or {topology.run_control_host.address} is not an address of this host: free the port or set another "
                "[farm] control_port in the topology (a one-host run picks a free port: run it again)") from None
        self.assign = make_socket(self.ctx, zmq.ROUTER, hwm=100_000)
        self.assign_endpoint = bind(self.assign, rc_host.address, self.curve)
        self.table_path = table_path  # the per-event table, written with the summary (None: none)
        self.collector = Collector(self.ctx, self.config, output_dir, self.curve,
                                   events=EventTable(LATENCY_ORDER, topology.triton_url) if table_path is not None else None,
                                   metrics=metrics)
        self.hosts = {h.name: Host(h, RunState(h.name)) for h in topology.hosts}
        for host in self.hosts.values():
            if host.spec.is_node:
                host.results = make_socket(self.ctx, zmq.PULL, hwm=1000)
                host.results_endpoint = bind(host.results, rc_host.address, self.curve)
        self.poller = zmq.Poller()  # every socket run control reads, registered once (pump runs per message)
        for sock in [self.control, self.assign, self.collector.sock] + [h.results for h in self.hosts.values() if h.results]:
            self.poller.register(sock, zmq.POLLIN)
        self.service = AssignmentService(max_waiting=self.config.readout.buffer_events)
        self.liveness = RoleLiveness(int(topology.heartbeat_timeout_s * clock.NS_PER_S))
        self.accepted: set[int] = set()
        self.to_clear: list[int] = []
        self.problems: list[str] = []
        self.stale_outcomes = 0
        self.stopping: set[str] = set()  # hosts sent STOP: their agent stops its roles and heartbeats no more meanwhile
        self.bad_control = 0  # control or ACCEPT messages that do not decode: counted, dropped
        self.running = False
        self.builders_dead: set[str] = set()  # nodes whose event builder died: they build nothing more this run
        self.readout_died_at: float | None = None
        self.readout_down = False  # the readout process died (its host may live on)
        self._seq = 0
        self._pending_time: dict[int, tuple[str, int]] = {}
        self._next_clock = 0.0

    # -- sending -----------------------------------------------------------------------
    def send(self, host: str, kind: bytes, meta: dict[str, Any] | None = None) -> None:
        self.control.send_multipart([host.encode(), kind, messages.pack_meta(meta or {})])

    def ask_time(self) -> None:
        for name, host in self.hosts.items():
            if host.seen and not host.lost:
                self._seq += 1
                t0 = clock.now_ns()
                self._pending_time[self._seq] = (name, t0)
                self.send(name, cm.TIME_REQ, {"seq": self._seq, "t0": t0})

    # -- receiving ---------------------------------------------------------------------
    def pump(self, timeout_ms: int = POLL_MS) -> None:
        """Handle whatever arrives within `timeout_ms`, then run the assignment service."""
        ready = dict(self.poller.poll(timeout_ms))
        if self.control in ready:
            self._read_control()
        if self.assign in ready:
            self._read_accepts()
        for host in self.hosts.values():
            if host.results in ready:
                self._read_results(host)
        if self.collector.sock in ready:
            self.collector.poll(0)
        self._check_liveness()
        assigned = self.service.assignments()
        if assigned:
            self.assign.send_multipart([cm.READOUT_FEED.encode(), cm.ASSIGN,
                                        messages.pack_meta({"pairs": [[a.l1_id, a.node] for a in assigned]})])
        if self.to_clear:
            self.assign.send_multipart([cm.READOUT_FEED.encode(), cm.CLEAR, messages.pack_meta({"ids": self.to_clear})])
            self.to_clear = []
        if time.monotonic() >= self._next_clock:
            self.ask_time()
            self._next_clock = time.monotonic() + CLOCK_PERIOD_S

    def _read_control(self) -> None:
        for _ in range(1000):
            try:
                sender, kind, meta_frame = self.control.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except ValueError:
                self.bad_control += 1
                continue
            host = self.hosts.get(sender.decode(errors="replace"))
            try:
                meta = messages.unpack_meta(meta_frame)
            except (ValueError, TypeError):
                meta = None
            if host is None or meta is None:
                self.bad_control += 1
                continue
            now = clock.now_ns()
            host.seen = True
            if self.liveness.heard(host.spec.name, now):
                self._rejoined(host)
            if kind == cm.TIME_REP:
                pending = self._pending_time.pop(meta.get("seq"), None)
                if pending is not None and pending[0] == host.spec.name:
                    host.exchanges.append(Exchange(pending[1], int(meta["t1"]), int(meta["t2"]), now))
            elif kind == cm.CONFIGURED:
                host.configured = meta
            elif kind == cm.FAILED:
                host.failed = str(meta.get("problem", "failed"))
            elif kind == cm.STOPPED:
                host.stopped = meta
                self._count_restarts(host, meta.get("restarts"))
            elif kind == cm.HEARTBEAT:
                self._count_restarts(host, meta.get("restarts"))
            elif kind == cm.ROLE_DIED:
                self._role_died(host, str(meta.get("role", "")), meta.get("exit_code"))

    def _count_restarts(self, host: Host, restarts: Any) -> None:
        """Add a host's new worker restarts (its running total, from a heartbeat or STOPPED)
        to the run's metrics."""
        metrics = self.collector.metrics
        if metrics is None or not isinstance(restarts, int) or restarts <= host.restarts_counted:
            return
        metrics.restarts.inc(restarts - host.restarts_counted)
        host.restarts_counted = restarts

    def _read_accepts(self) -> None:
        for _ in range(1000):
            try:
                _, kind, meta_frame = self.assign.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except ValueError:
                continue
            try:
                ids = [int(i) for i in messages.unpack_meta(meta_frame)["ids"]] if kind == cm.ACCEPT else None
            except (ValueError, TypeError, KeyError):
                ids = None
            if ids is None:
                self.bad_control += 1
                continue
            for l1_id in ids:
                self.accepted.add(l1_id)
                outcome = self.service.accept(l1_id)
                if outcome is not None:
                    self._outcome(outcome)

    def _read_results(self, host: Host) -> None:
        for _ in range(1000):
            try:
                frames = host.results.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            # counted by the collector's rules (never fatal), a RESULT with several events one event at a time
            self.collector.handle_each(frames, lambda one: self._node_message(host, one))

    def _node_message(self, host: Host, frames: list) -> None:
        kind = frames[0].bytes
        name = host.spec.name
        if kind in (messages.RESULT, messages.MISSING):
            meta = messages.unpack_meta(frames[1])
            if not self.service.done(int(meta["l1_id"]), name):
                self.stale_outcomes += 1
                return
            self.to_clear.append(int(meta["l1_id"]))
            frames = self._in_reference_clock(host, kind, meta, frames)
        elif kind == messages.STATS and messages.unpack_meta(frames[1]).get("role") == "builder":
            host.builder_stats = messages.unpack_meta(frames[1])["counters"]
        elif kind == messages.STALLED:
            report = messages.unpack_meta(frames[1])
            self.send(name, cm.KILL, {"identity": report["identity"], "silent_s": report.get("silent_s", 0.0)})
            return
        self.collector.handle(frames)

    def _in_reference_clock(self, host: Host, kind: bytes, meta: dict[str, Any], frames: list) -> list:
        """The message with its stamps moved into run control's clock: the node's stamps by
        the node's offset, the Level-1 time by the readout host's. A node and readout on run
        control's own host are in its clock already: their messages pass unchanged (the
        event's host is then this host's name, as in the per-event table of a one-host run)."""
        rc_host = self.topology.run_control_host.name
        if host.spec.name == rc_host and self.topology.readout_host.name == rc_host:
            return frames
        node = self.offset_of(host.spec.name)
        readout = self.offset_of(self.topology.readout_host.name)

        def shift(d: dict[str, Any], key: str, off: Offset) -> None:
            if isinstance(d.get(key), int) and d[key]:
                d[key] = round(off.to_reference(d[key]))

        if kind == messages.RESULT:
            ours = messages.unpack_meta(frames[2])
            for key in ("received_ns", "decided_ns"):
                shift(meta, key, node)
            meta["host"] = host.spec.name
            for key in ("first_ns", "complete_ns", "dispatched_ns"):
                shift(ours, key, node)
            shift(ours, "l1_time_ns", readout)
            return [frames[0], zmq.Frame(messages.pack_meta(meta)), zmq.Frame(messages.pack_meta(ours)), *frames[3:]]
        shift(meta, "done_ns", node)
        shift(meta, "l1_time_ns", readout)
        return [frames[0], zmq.Frame(messages.pack_meta(meta)), *frames[2:]]

    def offset_of(self, name: str) -> Offset:
        if name == self.topology.run_control_host.name:
            return ZERO
        return self.hosts[name].offset or ZERO

    def _outcome(self, o: Outcome) -> None:
        """An event that ends here (HltError, MissingData, NotProcessed): to the collector."""
        meta = {"l1_id": o.l1_id, "stream": o.stream, "reason": o.reason, "missing_sources": [],
                "frames_per_fragment": [], "done_ns": clock.now_ns()}
        self.collector.handle([zmq.Frame(messages.MISSING), zmq.Frame(messages.pack_meta(meta))])
        self.to_clear.append(o.l1_id)

    # -- liveness ----------------------------------------------------------------------
    def _check_liveness(self) -> None:
        if not self.running:
            return
        for name, silent_ns in self.liveness.silent(clock.now_ns()):
            if name in self.stopping:  # stopping its roles (seconds, no heartbeats meanwhile): not dead
                continue
            host = self.hosts[name]
            host.lost = True
            host.state.apply("fail", f"silent for {silent_ns / clock.NS_PER_S:.1f} s")
            self.problems.append(f"host {name} silent for {silent_ns / clock.NS_PER_S:.1f} s: declared dead")
            outcomes: list[Outcome] = []
            if host.spec.is_node:
                outcomes += self.service.node_lost(name)
            if host.spec.readout:
                outcomes += self.service.source_lost(*source_ids(self.config))
            for o in outcomes:
                self._outcome(o)

    def _role_died(self, host: Host, role: str, exit_code: Any) -> None:
        """A host's agent says one of its roles died. A node without its builder builds nothing
        more: its events go to the other nodes (retried once, then HltError), as for a node
        lost. A dead readout sends nothing more: once its END had a moment to arrive, what it
        still had to send is MissingData."""
        if not self.running:
            return
        name = host.spec.name
        if role == "builder" and host.spec.is_node and name not in self.builders_dead:
            self.builders_dead.add(name)
            self.problems.append(f"event builder on {name} died (exit code {exit_code}): its events go to the other nodes")
            for o in self.service.node_lost(name):
                self._outcome(o)
        elif role == "readout" and host.spec.readout and self.readout_died_at is None:
            self.readout_died_at = time.monotonic()
            self.problems.append(f"readout on {name} died (exit code {exit_code})")

    def _readout_death_settled(self) -> None:
        """A second after the readout died (its END, if it sent one, has arrived): its sources are lost."""
        if self.readout_died_at is None or self.readout_down or time.monotonic() - self.readout_died_at < READOUT_END_GRACE_S:
            return
        self.readout_down = True
        if self.collector.end is None:
            self.problems.append("the readout died before reporting its Level-1 count: the accepts it asked nodes for count")
        for o in self.service.source_lost(*source_ids(self.config)):
            self._outcome(o)

    def _rejoined(self, host: Host) -> None:
        if not host.lost:
            return
        host.lost = False
        host.rejoins += 1
        host.state.apply("reset")
        host.state.apply("configure")
        host.state.apply("start")
        self.problems.append(f"host {host.spec.name} heard again: rejoined")
        if host.spec.is_node and self.running and host.configured:
            self.service.join(host.spec.name, int(host.configured["slots"]))

    # -- the run -----------------------------------------------------------------------
    def wait_for(self, what: str, done, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            failed = [h.failed for h in self.hosts.values() if h.failed]
            if failed:
                raise TriggerSimError(f"{what}: {failed[0]}")
            if time.monotonic() > deadline:
                missing = [n for n, h in self.hosts.items() if not h.seen]
                raise TriggerSimError(f"{what}: not done after {timeout_s:.0f} s" + (f" (never heard from {missing})" if missing else ""))
            self.pump()

    def configure(self) -> None:
        self.wait_for("waiting for the node agents", lambda: all(h.seen for h in self.hosts.values()), HOSTS_TIMEOUT_S)
        for _ in range(CLOCK_ROUNDS):
            self.ask_time()
            self.pump(POLL_MS)
        triton = self.topology.triton_host
        order = ([[triton.name]] if triton else []) + [[h.name for h in self.topology.nodes], [self.topology.readout_host.name]]
        common = {"run_number": self.config.run.run_number, "triton_url": self.topology.triton_url,
                  "collector": self.collector.endpoint}
        done_names: set[str] = set()
        for names in order:
            names = [n for n in names if n not in done_names]
            for name in names:
                host = self.hosts[name]
                self.send(name, cm.CONFIGURE, {**common, "collector": host.results_endpoint or self.collector.endpoint})
            self.wait_for(f"configuring {names}", lambda: all(self.hosts[n].configured is not None for n in names), CONFIGURE_TIMEOUT_S)
            done_names.update(names)
        for name in set(self.hosts) - done_names:  # hosts with no role of their own (run control only)
            self.send(name, cm.CONFIGURE, common)
        for host in self.hosts.values():
            if host.configured is not None:
                host.state.apply("configure")

    def start(self, n_events: int | None, duration_s: float | None = None, replay: dict[str, Any] | None = None) -> None:
        """Start the nodes, then the readout: `n_events` Level-1 accepts, or for `duration_s`,
        or the events of `replay` ({"path": recording on the readout host, "loop": bool})."""
        self.running = True
        readout = self.topology.readout_host.name
        for node in self.topology.nodes:
            self.service.join(node.name, int(self.hosts[node.name].configured["slots"]))
            if node.name != readout:  # a node that is also the readout host gets the readout's START below
                self.send(node.name, cm.START)
        nodes = {n.name: self.hosts[n.name].configured["fragments"] for n in self.topology.nodes}
        self.send(readout, cm.START, {"assign": self.assign_endpoint, "collector": self.collector.endpoint, "nodes": nodes,
                                      "events": n_events, "duration_s": duration_s, "replay": replay})
        started = {n.name for n in self.topology.nodes} | {readout}
        for name, host in self.hosts.items():
            if name not in started:
                self.send(name, cm.START)  # hosts whose roles need no start (Triton) still go through the states
            if host.state.state == "CONFIGURED":
                host.state.apply("start")

    def run_until_done(self, timeout_s: float | None, progress: Progress | None = None,
                       interrupts: Interrupts | None = None, n_events: int | None = None,
                       on_tick: Callable[["RunControl"], None] | None = None) -> None:
        """Run until every Level-1 accept has its outcome. `progress` is given a reading every
        poll, `on_tick` run control itself (tests, fault injection); after a first signal
        (`interrupts`) the readout takes no more accepts and the farm drains, a second stops
        the run."""
        drain_s = drain_timeout_s(self.config)
        last_decided, progress_at = -1, time.monotonic()
        started = time.monotonic()
        input_ended = False
        while True:
            self.pump()
            c = self.collector
            if interrupts is not None and interrupts.drain and not input_ended:
                self.send(self.topology.readout_host.name, cm.END_INPUT)
                input_ended = True
            if interrupts is not None and interrupts.stop:
                self.problems.append("stopped by a second signal before the drain finished")
                return
            if progress is not None:
                progress(progress_reading(c, n_events, self.topology.triton_url or None))
            if on_tick is not None:
                on_tick(self)
            self._readout_death_settled()
            if len(self.builders_dead) == len(self.topology.nodes):
                self.problems.append("no node has an event builder left: run stopped")
                return
            if c.end is None and self.readout_lost:
                self._end_from_accepts()
            if c.end is not None and c.ledger.decided >= c.end["l1_accepted"] and c.n_unaccounted() == 0:
                return
            if c.ledger.decided != last_decided:
                last_decided, progress_at = c.ledger.decided, time.monotonic()
            elif self.readout_lost and time.monotonic() - progress_at > self._quiet_after_readout_loss_s():
                # what the nodes still hold never reached them whole (a builder reports the
                # events it saw, complete or timed out): MissingData
                for o in self.service.drain("readout host lost before the node had the event's fragments", MISSING_DATA):
                    self._outcome(o)
            elif time.monotonic() - progress_at > drain_s + self.topology.heartbeat_timeout_s:
                self.problems.append(f"no event decided for {time.monotonic() - progress_at:.1f} s: stopped")
                return
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                self.problems.append(f"run not finished after {timeout_s:.0f} s: stopped")
                return

    @property
    def readout_lost(self) -> bool:
        return self.hosts[self.topology.readout_host.name].lost or self.readout_down

    def _quiet_after_readout_loss_s(self) -> float:
        """No decision for this long after the readout was lost: the nodes hold nothing more
        that can complete (a build timeout, then a worker's budget, have passed)."""
        return (self.config.builder.build_timeout_ms + self.config.worker.budget_ms) / 1e3 + 1.0

    def _end_from_accepts(self) -> None:
        """The readout host is gone before its END: the ids it asked nodes for are the Level-1 accepts."""
        ids = IdRanges()
        for l1_id in sorted(self.accepted):
            ids.add(l1_id)
        chunks = ids.chunks(RANGES_PER_MESSAGE)
        for index, ranges in enumerate(chunks):
            self.collector.handle([zmq.Frame(messages.L1_IDS), zmq.Frame(messages.pack_meta({"chunk": index, "ranges": ranges}))])
        self.collector.handle([zmq.Frame(messages.END), zmq.Frame(messages.pack_meta({
            "l1_accepted": len(self.accepted), "id_chunks": len(chunks), "problem": "",
            "from_run_control": True}))])

    def stop(self) -> None:
        readout = self.topology.readout_host.name
        groups = [[readout], [name for name in self.hosts if name != readout]]
        for names in groups:
            names = [n for n in names if not self.hosts[n].lost]
            self.stopping.update(names)
            for name in names:
                self.send(name, cm.STOP)
            try:
                self.wait_for(f"stopping {names}", lambda: all(self.hosts[n].stopped is not None for n in names), STOP_TIMEOUT_S)
            except TriggerSimError as err:
                self.problems.append(str(err))
        self.running = False
        deadline = time.monotonic() + STOP_LATE_S
        while time.monotonic() < deadline and not self.all_answered():
            self.pump()
        for o in self.service.drain("farm stopped before a node answered for the event"):
            self._outcome(o)
        for host in self.hosts.values():
            if host.stopped is not None and host.state.state == "RUNNING":
                host.state.apply("stop")

    def all_answered(self) -> bool:
        """Nothing more can arrive that counts: the readout's END is in, every Level-1 accept
        it announced has its decision, no assignment waits or is held by a node, and every
        node's builder has sent its statistics (its last message, on another connection than
        its agent's STOPPED, so possibly still on its way)."""
        ids = self.collector.expected_ids()
        builders_reported = all(h.builder_stats for name, h in self.hosts.items()
                                if h.spec.is_node and not h.lost and name not in self.builders_dead)
        return (ids is not None and self.collector.ledger.lost_in_ranges(ids.ranges) == 0
                and self.service.n_waiting == 0 and self.service.n_in_flight == 0 and builders_reported)

    def summary(self, wall_s: float, output_dir: Path | None, server_restarts: dict[str, int] | None = None) -> dict[str, Any]:
        """The run's summary; `server_restarts`: restarts of servers kept outside the topology's
        agents (a one-host run keeps its own), added to those the hosts reported."""
        restarts = sum(int((h.stopped or {}).get("restarts", 0)) for h in self.hosts.values())
        for h in self.hosts.values():
            self.problems += [f"{h.spec.name}: {p}" for p in (h.stopped or {}).get("problems", [])]
        workers = sum(h.spec.workers for h in self.hosts.values())
        stopped = [h.stopped or {} for h in self.hosts.values()]
        table_written = write_events_table(self.collector.events, self.table_path, self.problems)
        out = summarise(self.collector, workers, self.topology.triton_url, "topology" if self.topology.triton_url else "none",
                        wall_s, str(output_dir) if output_dir is not None and self.collector.writers else None,
                        self.problems, restarts=restarts, model_reloads=sum(int(s.get("model_reloads", 0)) for s in stopped),
                        monitor_probe_failures=[f for s in stopped for f in s.get("monitor_probe_failures", [])],
                        server_restarts={**{url: n for s in stopped for url, n in s.get("server_restarts", {}).items()},
                                         **(server_restarts or {})},
                        deadlines_ms={m: 1e3 * self.config.inference.deadline_s(m) for m in self.config.inference.models},
                        events_table=table_written)
        decided_on = {name: 0 for name in self.hosts}
        for identity, n in self.collector.decided_by_worker.items():
            # "node1/worker-0.0"; a one-host farm's workers have no host prefix ("worker-0.0")
            host = identity.split("/", 1)[0] if "/" in identity else self.topology.nodes[0].name
            if host in decided_on:
                decided_on[host] += n
        slots = {name: int((h.configured or {}).get("slots", 0)) for name, h in self.hosts.items() if h.spec.is_node}
        out["workers"]["node_slots"] = sum(slots.values())  # what the calibration's reconstruction needs
        out["hosts"] = {name: {
            "address": h.spec.address, "roles": list(h.spec.roles), "states": h.state.history,
            "event_slots": slots.get(name, 0),
            "clock_offset_ms": (self.offset_of(name).offset_ns / clock.NS_PER_MS),
            "clock_uncertainty_ms": (self.offset_of(name).uncertainty_ns / clock.NS_PER_MS),
            "clock_samples": len(h.exchanges), "assigned": self.service.assigned_per_node.get(name, 0),
            "decided_by_workers": decided_on[name], "lost": h.lost, "rejoins": h.rejoins,
            "builder": h.builder_stats} for name, h in self.hosts.items()}
        out["assignment"] = {"reassigned": self.service.reassigned, "stale_outcomes_dropped": self.stale_outcomes,
                             "accepts_seen": len(self.accepted),
                             "bad_control_messages": self.bad_control}
        return out

    def exit_agents(self) -> None:
        for name in self.hosts:
            self.send(name, cm.EXIT)

    def close(self) -> None:
        self.collector.close()
        for sock in [self.control, self.assign] + [h.results for h in self.hosts.values() if h.results]:
            sock.close(linger=200)
        if self.curve is not None:
            self.curve.close()
        self.ctx.term()


def run_topology(topology: Topology, config: FarmConfig, n_events: int | None = None, output_dir: str | Path | None = "auto",
                 timeout_s: float | None = None, on_state: Callable[[str], None] | None = None,
                 events_table: str | Path | None = "auto", duration_s: float | None = None,
                 progress: Progress | None = None, replay: str | Path | None = None, loop: bool = False,
                 on_started: Callable[[RunControl], None] | None = None,
                 on_tick: Callable[[RunControl], None] | None = None,
                 server_restarts: dict[str, int] | None = None) -> dict[str, Any]:
    """Run `n_events` Level-1 accepts (or for `duration_s`, or the events of the recording
    `replay`, on the readout host, `loop`ed or until it ends) on the farm the topology
    describes (its node agents must be running, or start within HOSTS_TIMEOUT_S); return
    the summary. `on_state` is told each state the run reaches (CONFIGURED, RUNNING,
    STOPPED); `progress` is given a reading as the run goes; `on_started` and `on_tick` are
    given run control once the run started and at every poll (tests, fault injection). `events_table`: the per-event
    table, as for the one-host run ("auto": events.parquet in the output folder). The first
    SIGINT or SIGTERM drains the run, a second stops it; with monitoring on, run control
    serves the run's metrics on the metrics port of role `supervisor` (base_port) and keeps them up for a last scrape."""
    config, replay_spec = run_input(config, n_events, duration_s, replay, loop)
    say = on_state or (lambda state: None)
    wall_start = time.monotonic()
    if events_table not in (None, "auto"):
        check_writable(events_table)  # a .root name without uproot fails now, not after the run
    out_dir = prepare_output(config, output_dir)
    metrics = SupervisorMetrics(config.worker.budget_ms, topology.triton_url or "none") if config.monitoring.enabled else None
    with Interrupts() as interrupts:
        rc = RunControl(topology, config, out_dir, events_table_path(events_table, out_dir), metrics)
        endpoint = serve(metrics.registry, config.monitoring, SUPERVISOR) if metrics is not None else None
        try:
            try:
                rc.configure()
                say("CONFIGURED")
                rc.start(n_events, duration_s, replay_spec)
                say("RUNNING")
                if on_started is not None:
                    on_started(rc)
                rc.run_until_done(timeout_s, progress, interrupts, n_events, on_tick)
            finally:
                if rc.running:
                    rc.stop()
                    say("STOPPED")
            summary = rc.summary(time.monotonic() - wall_start, out_dir, server_restarts)
            summary["interrupted_by"] = interrupts.first
            if endpoint is not None:  # the final values stay up for a last scrape
                interrupts.linger(config.monitoring.linger_s)
            return summary
        finally:
            rc.exit_agents()  # also after a failure: no agent is left waiting for a run
            rc.pump(100)
            rc.close()
            if endpoint is not None:
                endpoint.close()
