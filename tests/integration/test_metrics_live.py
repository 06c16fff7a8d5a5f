"""A farm run watched through its /metrics endpoints and by a real Prometheus server.

One short run (320 events at a constant 40 Hz, 2 workers, the session's Triton server): a thread scrapes
every process's endpoint while it runs and parses the text with prometheus_client's parser;
Prometheus (where installed) scrapes the same run with the shipped configuration, its
targets rewritten to this run's ports. Counters must grow while the run goes on, and the
supervisor's last scrape (its endpoint stays up for `monitoring.linger_s` after the run)
must equal the summary exactly; Prometheus's Level-1 accept rate over the run must agree
with the summary's within 5 %.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from farm.one_host import FarmHooks, run_farm
from trigger_sim.config import load_config, with_overrides
from trigger_sim.metrics import PREFIX, TRITON_METRICS, process_ports

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SHIPPED = Path(__file__).resolve().parents[2] / "monitoring" / "prometheus.yml"
N_EVENTS, RATE_HZ, N_WORKERS = 320, 40.0, 2  # 8 s of input: several scrapes of every process
SCRAPE_PERIOD_S = 0.25


def free_port_block(n: int) -> int:
    """A base port with `n` consecutive free ports on loopback."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n >= 65000:
            continue
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no block of free ports")


def scrape(port: int) -> dict[tuple, float] | None:
    """One endpoint's samples as {(name, sorted labels): value}; None when it does not answer."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1.0).read().decode()
    except (urllib.error.URLError, OSError):
        return None
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and all(dict(ls).get(k) == w for k, w in labels.items()))


class Scraper(threading.Thread):
    """Scrapes every port every 0.25 s until stopped; keeps (time, port, samples)."""

    def __init__(self, ports: dict[str, int]):
        super().__init__(daemon=True, name="scraper")
        self.ports, self.scrapes, self.done = ports, [], threading.Event()

    def run(self) -> None:
        while not self.done.wait(SCRAPE_PERIOD_S):
            for role, port in self.ports.items():
                samples = scrape(port)
                if samples is not None:
                    self.scrapes.append((time.time(), role, samples))

    def of(self, role: str) -> list[dict]:
        return [s for _, r, s in self.scrapes if r == role]


def shipped_config_for(ports: dict[str, int], triton_metrics: str) -> str:
    """The shipped configuration with this run's ports: 9400 + k becomes base + k, Triton's
    8002 this server's metrics port."""
    base = ports["supervisor"]
    text = re.sub(r"127\.0\.0\.1:94(\d\d)", lambda m: f"127.0.0.1:{base + int(m.group(1))}", SHIPPED.read_text())
    return text.replace("127.0.0.1:8002", triton_metrics)


class Prometheus:
    """A real prometheus on a free port with a temporary storage folder; removed at `stop`."""

    def __init__(self, config_text: str):
        self.dir = Path(tempfile.mkdtemp(prefix="tsim-prom-"))
        (self.dir / "prometheus.yml").write_text(config_text)
        self.port = free_port_block(1)
        self.proc = subprocess.Popen(
            [shutil.which("prometheus"), f"--config.file={self.dir / 'prometheus.yml'}", f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"], stdout=subprocess.DEVNULL, stderr=open(self.dir / "log", "wb"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1).status == 200:
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("prometheus not ready after 20 s")

    def query(self, expr: str, at: float) -> list[dict]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
        body = json.loads(urllib.request.urlopen(url, timeout=5).read())
        assert body["status"] == "success", body
        return body["data"]["result"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def watched_run(triton_server):
    base = free_port_block(3 + N_WORKERS)
    config = with_overrides(load_config(), readout={"rate_hz": RATE_HZ, "pattern": "constant"}, worker={"count": N_WORKERS},
                            inference={"triton_url": triton_server.grpc_url}, output={"write_streams": False},
                            monitoring={"base_port": base, "linger_s": 2.5})
    ports = process_ports(base, N_WORKERS)
    prometheus = None
    if shutil.which("prometheus"):
        prometheus = Prometheus(shipped_config_for(ports, f"127.0.0.1:{triton_server.metrics_port}"))
    scraper = Scraper(ports)
    scraper.start()
    try:
        started = time.time()
        summary = run_farm(config, N_EVENTS, output_dir=None, events_table=None)
        ended = time.time()
        scraper.done.set()
        scraper.join(5)
        triton_text = urllib.request.urlopen(f"http://127.0.0.1:{triton_server.metrics_port}/metrics", timeout=5).read().decode()
        yield {"summary": summary, "scraper": scraper, "prometheus": prometheus, "started": started, "ended": ended,
               "ports": ports, "triton_metrics": triton_text}
    finally:
        scraper.done.set()
        if prometheus is not None:
            prometheus.stop()


def test_counters_grow_while_running_and_end_equal_to_the_summary(watched_run):
    summary, scraper = watched_run["summary"], watched_run["scraper"]
    assert summary["events"]["lost"] == 0 and summary["events"]["l1_accepted"] == N_EVENTS, summary["problems"]
    assert summary["monitoring"]["ports"] == watched_run["ports"] and summary["monitoring"]["metrics_errors"] == 0
    sup = scraper.of("supervisor")
    decided = [total(s, f"{PREFIX}events_total") for s in sup]
    assert decided == sorted(decided) and len(set(decided)) >= 5, decided  # grew, in several steps, while running
    for role, name in (("readout", f"{PREFIX}level1_accepts_total"), ("worker-0", f"{PREFIX}worker_events_total"),
                       ("worker-1", f"{PREFIX}inference_calls_total"), ("builder", f"{PREFIX}builder_fragments_total")):
        seen = [total(s, name) for s in scraper.of(role)]
        assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] > seen[0], (role, seen)
    assert any((f"{PREFIX}builder_events_waiting", ()) in s for s in scraper.of("builder"))

    last, events, inference = sup[-1], summary["events"], summary["inference"]
    for outcome in ("accepted", "rejected", "debug"):
        assert total(last, f"{PREFIX}events_total", outcome=outcome) == events[outcome], outcome
    assert total(last, f"{PREFIX}inference_path_events_total", path="triton") == inference["triton_calls"]
    assert total(last, f"{PREFIX}inference_path_events_total", path="fallback") == inference["fallback_calls"]
    fallbacks = {dict(ls)["reason"]: v for (n, ls), v in last.items() if n == f"{PREFIX}fallback_events_total"}
    assert fallbacks == inference["fallback_reasons"]
    for chain, n in summary["chains"].items():
        assert total(last, f"{PREFIX}chain_events_total", chain=chain) == n
    for model, m in inference["models"].items():  # per server and model: the events each path answered
        assert total(last, f"{PREFIX}model_events_total", server=inference["server"], model=model, path="triton") == m["triton_calls"], model
        assert total(last, f"{PREFIX}model_events_total", model=model, path="fallback") == m["fallback_calls"], model
    assert total(last, f"{PREFIX}event_latency_seconds_count") == summary["latency_ms"]["total"]["n"]


def test_triton_exports_the_metrics_the_dashboard_reads(watched_run):
    names = {f.name for f in text_string_to_metric_families(watched_run["triton_metrics"])}
    names |= {s.name for f in text_string_to_metric_families(watched_run["triton_metrics"]) for s in f.samples}
    assert set(TRITON_METRICS) <= names, sorted(set(TRITON_METRICS) - names)


def test_prometheus_with_the_shipped_configuration_sees_the_run(watched_run):
    prometheus = watched_run["prometheus"]
    if prometheus is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus; .ci/run installs it)")
    summary, ended = watched_run["summary"], watched_run["ended"]
    up = {r["metric"]["role"] for r in prometheus.query("max_over_time(up[5m]) == 1", ended) if "role" in r["metric"]}
    assert {"supervisor", "builder", "readout", "worker", "triton"} <= up, up
    # The Level-1 accept rate (constant pacing) over the last 3 s of input, evaluated at the
    # readout's last scraped sample: the operator's `rate()` of the readout's counter.
    (series,) = prometheus.query(f"{PREFIX}level1_accepts_total[5m]", ended)
    samples = [(float(t), float(v)) for t, v in series["values"]]
    assert len(samples) >= 3 and samples[-1][1] > samples[0][1], samples
    last_t = samples[-1][0]
    (rate,) = prometheus.query(f"sum(rate({PREFIX}level1_accepts_total[3s]))", last_t)
    assert float(rate["value"][1]) == pytest.approx(summary["level1"]["input_rate_hz"], rel=0.05), (rate, samples)
    # the decided events from the supervisor's final values (its endpoint lingers for a last scrape)
    (decided,) = prometheus.query(f"sum(max_over_time({PREFIX}events_total[5m]))", ended)
    assert float(decided["value"][1]) == summary["events"]["l1_accepted"]


def test_a_restarted_worker_serves_again_on_its_port_and_the_restart_is_counted(triton_server):
    """SIGKILL worker 0 mid-run: the supervisor counts the restart, the new process serves
    its slot's port again (its counters start over, as Prometheus expects of a restart), and
    the final figures still equal the summary's."""
    base = free_port_block(3 + N_WORKERS)
    config = with_overrides(load_config(), readout={"rate_hz": RATE_HZ, "pattern": "constant"}, worker={"count": N_WORKERS},
                            inference={"triton_url": triton_server.grpc_url}, output={"write_streams": False},
                            monitoring={"base_port": base, "linger_s": 2.5})
    killed = []

    def tick(farm) -> None:
        if not killed and farm.collector.ledger.decided >= 40:
            killed.append(farm.workers[0].pid)
            os.kill(farm.workers[0].pid, signal.SIGKILL)

    scraper = Scraper(process_ports(base, N_WORKERS))
    scraper.start()
    try:
        summary = run_farm(config, N_EVENTS, output_dir=None, events_table=None, hooks=FarmHooks(on_tick=tick))
    finally:
        scraper.done.set()
        scraper.join(5)
    assert killed and summary["workers"]["restarts"] == 1 and summary["events"]["lost"] == 0, summary["problems"]
    last = scraper.of("supervisor")[-1]
    assert total(last, f"{PREFIX}worker_restarts_total") == 1
    for outcome in ("accepted", "rejected", "debug"):
        assert total(last, f"{PREFIX}events_total", outcome=outcome) == summary["events"][outcome], outcome
    seen = [total(s, f"{PREFIX}worker_events_total") for s in scraper.of("worker-0")]
    reset = next((i for i in range(1, len(seen)) if seen[i] < seen[i - 1]), None)
    assert reset is not None and max(seen[reset:]) > 0, seen  # the new process counts from zero, on the same port
