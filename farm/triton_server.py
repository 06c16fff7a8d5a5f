"""Start, watch and stop a real `tritonserver` (from the nvidia-pytriton wheel) on loopback.

The server binds gRPC, HTTP and metrics to 127.0.0.1 on free ports, runs in its own
process session, and is stopped with SIGTERM then SIGKILL of the whole session (server
and Python-backend stubs). Its shared-memory regions carry a prefix unique to this
server, and are removed after it stops, so nothing is left in /dev/shm.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from farm.lifecycle import child_pids, reaping_orphans, server_launch
from trigger_sim.errors import TritonStartError

SHM_PREFIX_BASE = "triton_python_backend_shm_region_tsim"
ERROR_LINE = re.compile(r"^(E\d{4} |error: )")
HARMLESS_ERRORS = ("CudaDriverHelper has not been initialized",  # logged as an error on every host without a GPU
                   "Exit timeout expired")  # logged by every stop that outlasts EXIT_TIMEOUT_S (model unloads)
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
EXIT_TIMEOUT_S = 1  # seconds Triton waits, once stopped, for in-flight requests and model unloads (see start)


def pytriton_dir() -> Path:
    """Folder of the installed nvidia-pytriton package (holds the server binary)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonStartError("nvidia-pytriton is not installed: run `pip install -e .` (it provides tritonserver)")
    return Path(spec.submodule_search_locations[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether a TCP port on the loopback can be bound now."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class TritonServer:
    """A local tritonserver serving `model_repository`; use as a context manager."""

    def __init__(self, model_repository: str | Path, start_timeout_s: float = 60.0, log_path: str | Path | None = None,
                 model_config_name: str | None = None, metrics_port: int = 0, grpc_address: str = "127.0.0.1",
                 grpc_port: int = 0):
        """`metrics_port`: where Triton serves its metrics (0: a free port), so a scrape
        configuration can name it. `grpc_address`, `grpc_port`: where gRPC listens (a host
        address and a fixed port for a Triton host of a farm across hosts; default loopback
        and a free port)."""
        self.model_repository = Path(model_repository).resolve()
        self.model_config_name = model_config_name  # e.g. "gpu": each model's configs/gpu.pbtxt instead of config.pbtxt
        self.start_timeout_s = start_timeout_s
        self._workdir = Path(tempfile.mkdtemp(prefix="tsim-triton-"))
        self.log_path = Path(log_path) if log_path else self._workdir / "tritonserver.log"
        self.shm_prefix = f"{SHM_PREFIX_BASE}{uuid.uuid4().hex[:8]}_"
        self.proc: subprocess.Popen | None = None
        self.grpc_port = self.http_port = self.metrics_port = 0
        self.fixed_metrics_port = metrics_port
        self.grpc_address, self._fixed_grpc_port = grpc_address, grpc_port

    @property
    def grpc_url(self) -> str:
        return f"{self.grpc_address}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def _backend_dir(self, root: Path) -> Path:
        """Backend folder with links to the Python backend and the stub for this Python."""
        server = root / "tritonserver"
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = server / "python_backend_stubs" / version / "triton_python_backend_stub"
        if not stub.exists():
            raise TritonStartError(f"no Triton Python-backend stub for Python {version} in {stub.parent.parent}")
        target = self._workdir / "backends" / "python"
        target.mkdir(parents=True, exist_ok=True)
        for src in (server / "backends" / "python" / "libtriton_python.so", server / "backends" / "python" / "triton_python_backend_utils.py", stub):
            link = target / src.name
            if not link.exists():
                link.symlink_to(src)
        return target.parent

    def start(self, same_ports: bool = False) -> "TritonServer":
        """Start the server and wait until it is ready; `same_ports` restarts it where
        clients already connect."""
        self.launch(same_ports)
        self.wait_ready()
        return self

    def launch(self, same_ports: bool = False) -> None:
        """Start the process without waiting (several servers then load at once). The server
        gets SIGTERM when the thread that launched it ends: launch from a thread that lives
        as long as the server should."""
        root = pytriton_dir()
        binary = root / "tritonserver" / "bin" / "tritonserver"
        backends = self._backend_dir(root)
        if not (same_ports and self.grpc_port):
            self.grpc_port, self.http_port = self._fixed_grpc_port or free_port(), free_port()
            if self.fixed_metrics_port and not port_is_free(self.fixed_metrics_port):
                raise TritonStartError(f"port {self.fixed_metrics_port} for Triton's metrics is taken (another Triton server?): "
                                       "set [monitoring] triton_base_port to free ports, or 0 for any")
            self.metrics_port = self.fixed_metrics_port or free_port()
        env = dict(os.environ)
        # The stub runs models with the first python3 on PATH: make it ours.
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
        libdirs = [sysconfig.get_config_var("LIBDIR") or "", str(root.parent / "nvidia_pytriton.libs")]
        env["LD_LIBRARY_PATH"] = os.pathsep.join([d for d in libdirs if d] + [env.get("LD_LIBRARY_PATH", "")])
        # One BLAS thread per model instance: parallelism comes from the instance count
        # (instance_group); BLAS threads on top of it oversubscribe the cores (BENCHMARKS.md).
        for var in BLAS_THREAD_VARIABLES:
            env.setdefault(var, "1")
        cmd = [
            str(binary),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backends}",
            "--disable-auto-complete-config",
            "--model-control-mode=explicit", "--load-model=*",  # so a broken model can be reloaded
            "--allow-gpu-metrics=false",
            f"--grpc-address={self.grpc_address}", f"--grpc-port={self.grpc_port}",
            "--http-address=127.0.0.1", f"--http-port={self.http_port}",
            "--metrics-address=127.0.0.1", f"--metrics-port={self.metrics_port}",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
            "--log-verbose=0",
            # Stopping: Triton waits this long for in-flight requests and model unloads. Each
            # Python-backend stub takes 1-3 s to unload, polled once a second, so the default 30
            # made every stop last ~4 s; a server of ours is idle when it is stopped
            f"--exit-timeout-secs={EXIT_TIMEOUT_S}",
        ]
        if self.model_config_name:
            cmd.append(f"--model-config-name={self.model_config_name}")
        self._log = open(self.log_path, "ab")
        argv, how = server_launch(cmd)
        self.proc = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT, **how)

    def wait_ready(self) -> None:
        """Wait until the launched server answers ready; TritonStartError (server stopped)
        when it exits or is not ready within `start_timeout_s`."""
        deadline = time.monotonic() + self.start_timeout_s
        url = f"http://{self.http_url}/v2/health/ready"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code, why = self.proc.returncode, self.log_errors() or self.log_tail()
                self.stop()
                raise TritonStartError(f"tritonserver exited with code {code} while starting:\n{why}")
            try:
                with urllib.request.urlopen(url, timeout=0.5) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        tail = self.log_tail()
        self.stop()
        raise TritonStartError(f"tritonserver not ready after {self.start_timeout_s:.0f} s:\n{tail}")

    def is_live(self, timeout_s: float = 0.5) -> bool:
        """The server process answers its health endpoint (its models may still be broken)."""
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/live", timeout=timeout_s) as resp:
                return resp.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def kill(self) -> None:
        """SIGKILL the server and its stubs at once (fault injection); shm files are removed."""
        if self.proc is not None:
            _signal_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.proc = None
            self._log.close()
        self._remove_shm()

    def restart(self) -> None:
        """Start a server that died again on the same ports, where its clients reconnect by
        themselves: what is left of the dead one (stubs, shm files, its log handle) goes first."""
        self._end_process(grace_s=0.0)
        self.start(same_ports=True)

    def reload_model(self, name: str, timeout_s: float = 30.0) -> None:
        """Unload and load a model (recovers a model whose backend stub died)."""
        body = b"{}"
        for action in ("unload", "load"):
            req = urllib.request.Request(f"http://{self.http_url}/v2/repository/models/{name}/{action}", data=body, method="POST")
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                if resp.status != 200:
                    raise TritonStartError(f"{action} of model {name} failed: HTTP {resp.status}")

    def log_tail(self, n_lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n_lines:])
        except OSError:
            return "(no log)"

    def log_errors(self, limit: int = 10) -> str:
        """The server's error lines (glog's "E<date> ..." and "error: ..."), the last `limit` of them."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        errors = [line for line in lines if ERROR_LINE.match(line)
                  and not any(harmless in line for harmless in HARMLESS_ERRORS)]
        return "\n".join(errors[-limit:])

    def stub_pids(self) -> list[int]:
        """The server's Python-backend stubs still running (its child processes)."""
        return child_pids(self.proc.pid, zombies=False) if self.proc is not None else []

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the server's session, wait, SIGKILL what is left, remove its shm files."""
        self._end_process(grace_s)
        shutil.rmtree(self._workdir, ignore_errors=True)  # backend links and the default log

    def _end_process(self, grace_s: float) -> None:
        """SIGTERM the session and wait up to `grace_s` (0: no SIGTERM), SIGKILL what is left
        (stubs that outlived the server too), remove the shm files."""
        if self.proc is not None:
            pgid = self.proc.pid
            # The server exits without waiting for its Python-backend stubs (EXIT_TIMEOUT_S):
            # reaped here, their CPU counts as this process's children's, not as other load
            with reaping_orphans(child_pids(pgid)):
                if grace_s > 0:
                    _signal_group(pgid, signal.SIGTERM)
                    try:
                        self.proc.wait(timeout=grace_s)
                    except subprocess.TimeoutExpired:
                        pass
                _signal_group(pgid, signal.SIGKILL)
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            self.proc = None
            self._log.close()
        self._remove_shm()

    def _remove_shm(self) -> None:
        for leftover in Path("/dev/shm").glob(self.shm_prefix + "*"):
            try:
                leftover.unlink()
            except OSError:
                pass

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
