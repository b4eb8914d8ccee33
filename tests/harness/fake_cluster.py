"""The simulated cluster as a process: the fake API server and the kubelet simulator (GPU nodes with the NVIDIA
device plugin running; each container runs the program its command names, a fake vLLM server for vLLM pods),
managed like a daemon. `scripts/fake-cluster` is its command line; tests and benchmarks import the same
functions.

Defaults are realistic (time scale 1.0, images already on the nodes, a model load of 20 s as the home lab
measured from its cache, a 3 s shutdown): a newcomer's first try behaves like a node. `--time-scale`,
`--load-seconds` and `--shutdown-seconds` shorten them.

    up(ClusterConfig(kubeconfig="/tmp/kc", nodes=[NodeSpec(gpus=2)]))   # background, returns once ready
    status()                                                           # what runs
    down("/tmp/kc")                                                    # stop it, remove its state
    serve(ClusterConfig(...))                                          # foreground (`run`)

One cluster per kubeconfig path. Its state lives in `<state root>/<hash of the kubeconfig's real path>/`:
`state.json` (url, pid, nodes, kubeconfig and the digest of what was written to it), `pid`, `log` (the
background process's stdout and stderr), `nodes/<node>/gpu/` (each GPU node's memory ledger as the fake
NVML reads it: `nvml.txt`, `proc/`) and `lock`, which the serving process holds with flock(2) for its life:
"running" means "the lock is held", so a crashed process (even SIGKILL) never looks alive, and its leftovers
are cleaned by the next `down`, `up` or `status`. The state root is `$BAREMETAL_GPU_FAKE_CLUSTER_STATE`, else
`$XDG_STATE_HOME/baremetal-gpu/fake-cluster`, else `~/.local/state/baremetal-gpu/fake-cluster`.

Everything runs in one process (threads); the background process leads its own session, so `down`
signals the whole process group and nothing it started can outlive it.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import hashlib
import json
import os
import select
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

# The harness's heavy modules (aiohttp, the fake API server) are imported only where the cluster runs, so
# that `up`, `down` and `status` themselves start fast.

__all__ = ["ClusterConfig", "ClusterState", "FakeClusterError", "AlreadyRunning", "PortInUse",
           "up", "down", "serve", "status", "state_root", "state_dir", "main"]

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_ENV = "BAREMETAL_GPU_FAKE_CLUSTER_STATE"
READY_PREFIX = "READY "
EXIT_ALREADY_RUNNING = 3
EXIT_PORT_IN_USE = 4


class FakeClusterError(RuntimeError):
    """A failure `scripts/fake-cluster` reports as one line (no traceback)."""

    exit_code = 1


class AlreadyRunning(FakeClusterError):
    exit_code = EXIT_ALREADY_RUNNING


class PortInUse(FakeClusterError):
    exit_code = EXIT_PORT_IN_USE


@dataclass
class ClusterConfig:
    """What to run. `nodes`: one entry per node, a `kubelet.NodeSpec` or a dict of its keyword arguments
    (name, gpus, gpu_product, gpu_memory_mib, time_slicing_replicas, labels, taints...); NodeSpec's defaults
    fill the rest (one RTX 3060 12 GB node called gpu-node). Durations are simulated seconds, run at
    `time_scale` (1.0: real time)."""

    kubeconfig: str
    nodes: List[Any] = field(default_factory=lambda: [{}])
    host: str = "127.0.0.1"
    port: int = 0
    namespace: str = "default"
    time_scale: float = 1.0
    load_seconds: float = 20.0  # how long each fake vLLM server loads its model before /health answers
    shutdown_seconds: float = 3.0  # how long it takes to exit after SIGTERM
    device_plugin: bool = True  # False: bare nodes, no nvidia.com/gpu until something registers it
    pull_images: bool = False  # True: nodes start without images (pulls take size / bandwidth)

    def __post_init__(self) -> None:
        self.kubeconfig = os.path.abspath(os.path.expanduser(str(self.kubeconfig)))
        self.nodes = [dict(n) if isinstance(n, dict) else asdict(n) for n in self.nodes]
        if not self.time_scale > 0:
            raise FakeClusterError(f"--time-scale must be > 0, got {self.time_scale}")


@dataclass
class ClusterState:
    kubeconfig: str
    state_dir: str
    running: bool
    pid: Optional[int] = None
    url: Optional[str] = None
    log: Optional[str] = None
    nodes: List[Dict[str, Any]] = field(default_factory=list)
    started_at: Optional[float] = None

    def describe(self) -> str:
        if self.running:
            nodes = ", ".join(f"{n['name']} ({n['gpus']}x {n['gpu_product']})" for n in self.nodes) or "none"
            return (f"running: {self.url} (pid {self.pid}) kubeconfig {self.kubeconfig}\n"
                    f"  nodes: {nodes}\n  log: {self.log}")
        return f"not running (its process died; leftovers removed): kubeconfig {self.kubeconfig}"


# ---------------------------------------------------------------------- state directory


def state_root(root: Optional[str] = None) -> Path:
    if root:
        return Path(root).expanduser().resolve()
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV]).expanduser().resolve()
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base, "baremetal-gpu", "fake-cluster").resolve()


def state_dir(kubeconfig: str, root: Optional[str] = None) -> Path:
    real = os.path.realpath(os.path.abspath(os.path.expanduser(str(kubeconfig))))
    return state_root(root) / hashlib.sha256(real.encode()).hexdigest()[:16]


def _read_json(path: Path) -> Optional[Dict[str, Any]]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: Dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _sha256_file(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None


def _lock_held(directory: Path) -> bool:
    """True when a live process holds the directory's lock (a dead one releases it by dying). The probe takes
    a shared lock, so that probes never make each other (or a starting cluster, which retries) fail."""
    try:
        fd = os.open(directory / "lock", os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EAGAIN, errno.EACCES):
            return True
        raise
    finally:
        os.close(fd)  # closing drops a lock this probe may have taken
    return False


def _remove_leftovers(directory: Path, state: Optional[Dict[str, Any]], keep: Sequence[str] = ()) -> None:
    """Remove what a cluster that no longer runs left behind: its kubeconfig (only while it still holds
    exactly what the cluster wrote) and its state directory (but the files named in `keep`)."""
    if state and state.get("kubeconfig") and state.get("kubeconfig_sha256"):
        if _sha256_file(state["kubeconfig"]) == state["kubeconfig_sha256"]:
            try:
                os.unlink(state["kubeconfig"])
            except FileNotFoundError:
                pass
    if not keep:
        shutil.rmtree(directory, ignore_errors=True)
        return
    for entry in directory.iterdir() if directory.is_dir() else []:
        if entry.name not in keep:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def status(kubeconfig: Optional[str] = None, root: Optional[str] = None,
           clean: bool = True) -> List[ClusterState]:
    """The clusters under the state root (or the one of `kubeconfig`). One whose process died (crash,
    SIGKILL) is reported with running False, and with `clean` its leftovers are removed."""
    if kubeconfig is not None:
        directories = [state_dir(kubeconfig, root)]
    else:
        base = state_root(root)
        directories = sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    found = []
    for directory in directories:
        state = _read_json(directory / "state.json")
        running = _lock_held(directory)
        if state is None and not running:
            continue  # nothing, or a process between creating its directory and taking the lock
        found.append(_state_from(directory, state or {}, running))
        if not running and clean:
            _remove_leftovers(directory, state)
    return found


def _port_error(host: str, port: int, err: OSError) -> PortInUse:
    return PortInUse(f"cannot listen on {host}:{port}: port {port} is already in use "
                     f"({os.strerror(err.errno or errno.EADDRINUSE)}); pick another with --port or stop "
                     "what holds it")


def _take_lock(fd: int, patience: float = 0.5) -> bool:
    """The exclusive lock that means "running"; a moment's patience for a `status` probe holding it shared."""
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


class _ReadyPipe:
    """The write end of the pipe `up` waits on: one line, `READY <state json>` or `ERROR <code> <message>`."""

    def __init__(self, fd: Optional[int]) -> None:
        self.fd = fd

    def send(self, line: str) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            os.write(fd, (line.replace("\n", " ") + "\n").encode())
        except OSError:
            pass  # `up` gave up waiting
        finally:
            os.close(fd)


def serve(config: ClusterConfig, root: Optional[str] = None, ready_fd: Optional[int] = None,
          stop: Optional[threading.Event] = None, on_ready: Optional[Callable[[ClusterState], None]] = None) -> int:
    """Run the cluster in this process until `stop` is set (or SIGTERM/SIGINT when `stop` is None and this is
    the main thread). Writes the kubeconfig and the state; removes both when it stops, however it stops."""
    pipe = _ReadyPipe(ready_fd)
    try:
        return _serve(config, root, pipe, stop, on_ready)
    except FakeClusterError as err:
        pipe.send(f"ERROR {err.exit_code} {err}")
        raise
    except BaseException as err:
        pipe.send(f"ERROR 1 {err!r}")
        raise


def _serve(config: ClusterConfig, root: Optional[str], pipe: _ReadyPipe, stop: Optional[threading.Event],
           on_ready: Optional[Callable[[ClusterState], None]]) -> int:
    from tests.harness.fake_kube import FakeKubeAPI
    from tests.harness.kubelet import KubeletSimulator, NodeSpec

    directory = state_dir(config.kubeconfig, root)
    directory.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    if not _take_lock(lock_fd):
        os.close(lock_fd)
        running = _read_json(directory / "state.json") or {}
        raise AlreadyRunning(f"a fake cluster already runs for {config.kubeconfig}: {running.get('url', '?')} "
                             f"(pid {running.get('pid', '?')}); nothing done") from None
    if stop is None:
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            signal.signal(signal.SIGINT, lambda *_: stop.set())
    api = None
    sim = None
    state: Dict[str, Any] = {}
    try:
        stale = _read_json(directory / "state.json")
        if stale:  # a previous process died without cleaning up
            _remove_leftovers(directory, stale, keep=("lock", "log"))
        _refuse_foreign_kubeconfig(config.kubeconfig)
        try:
            nodes = [NodeSpec(**n) for n in config.nodes]
        except TypeError as err:
            raise FakeClusterError(f"bad node description: {err}") from None
        if len({n.name for n in nodes}) != len(nodes):
            raise FakeClusterError(f"node names must be unique: {[n.name for n in nodes]}")
        api = FakeKubeAPI(config.host, config.port)
        try:
            api.start()
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise _port_error(config.host, config.port, err) from None
            raise
        sim = KubeletSimulator(api.url, nodes=nodes, token=api.token_value, time_scale=config.time_scale,
                               device_plugin=config.device_plugin, images_present=[] if config.pull_images else "*",
                               vllm_load_seconds=config.load_seconds, vllm_shutdown_seconds=config.shutdown_seconds,
                               state_dir=directory)
        try:
            sim.start()
        except RuntimeError as err:
            raise FakeClusterError(str(err)) from None
        Path(config.kubeconfig).parent.mkdir(parents=True, exist_ok=True)
        api.write_kubeconfig(config.kubeconfig, config.namespace)
        state = {"pid": os.getpid(), "url": api.url, "ca_file": api.ca_file, "kubeconfig": config.kubeconfig,
                 "kubeconfig_sha256": _sha256_file(config.kubeconfig), "started_at": time.time(),
                 "nodes": [{"name": n.name, "gpus": n.gpus, "gpu_product": n.gpu_product,
                            "gpu_memory_mib": n.gpu_memory_mib, "time_slicing_replicas": n.time_slicing_replicas,
                            "gpu_state_dir": str(directory / "nodes" / n.name / "gpu") if n.gpus else None}
                           for n in nodes],
                 "time_scale": config.time_scale, "load_seconds": config.load_seconds,
                 "shutdown_seconds": config.shutdown_seconds}
        _write_json(directory / "state.json", state)
        (directory / "pid").write_text(f"{os.getpid()}\n", encoding="utf-8")
        print(f"fake cluster up: {api.url} (pid {os.getpid()})", flush=True)
        print(f"  kubeconfig: {config.kubeconfig}", flush=True)
        for node in nodes:
            allocatable = (api.get("Node", node.name).get("status") or {}).get("allocatable") or {}
            gpus = ", ".join(f"{k} {v}" for k, v in sorted(allocatable.items()) if k.startswith("nvidia.com/"))
            print(f"  node {node.name}: {node.gpus}x {node.gpu_product} ({node.gpu_memory_mib} MiB), "
                  f"allocatable {gpus or 'no GPUs'}", flush=True)
        if on_ready is not None:
            on_ready(_state_from(directory, state))
        pipe.send(READY_PREFIX + json.dumps(state))
        while not stop.wait(0.5):
            if sim.errors:
                for error in sim.errors:
                    print(f"kubelet simulator: {error}", flush=True)
                sim.errors.clear()
        print("fake cluster stopping", flush=True)
        return 0
    finally:
        try:
            if sim is not None:
                sim.stop()
        finally:
            if api is not None:
                api.stop()
            _remove_leftovers(directory, state)
            os.close(lock_fd)  # after removing the directory: nobody sees it half gone and unlocked


def _state_from(directory: Path, state: Dict[str, Any], running: bool = True) -> ClusterState:
    return ClusterState(kubeconfig=state.get("kubeconfig", "?"), state_dir=str(directory), running=running,
                        pid=state.get("pid"), url=state.get("url"), log=str(directory / "log"),
                        nodes=state.get("nodes") or [], started_at=state.get("started_at"))


def _refuse_foreign_kubeconfig(path: str) -> None:
    """Never overwrite a kubeconfig this command did not write (a real cluster's credentials)."""
    if os.path.lexists(path):
        raise FakeClusterError(f"{path} already exists and was not written by fake-cluster: refusing to "
                               "overwrite it (choose another --kubeconfig path or remove the file)")


# ---------------------------------------------------------------------- background process


def _config_argv(config: ClusterConfig) -> List[str]:
    argv = ["--kubeconfig", config.kubeconfig, "--host", config.host, "--port", str(config.port),
            "--namespace", config.namespace, "--time-scale", str(config.time_scale),
            "--load-seconds", str(config.load_seconds), "--shutdown-seconds", str(config.shutdown_seconds),
            "--nodes-json", json.dumps(config.nodes)]
    return argv + (["--no-device-plugin"] if not config.device_plugin else []) + \
        (["--pull-images"] if config.pull_images else [])


def _api_answers(url: str, ca_file: Optional[str] = None, timeout: float = 2.0) -> bool:
    """The API server answers over TLS (401 too: k3s wants credentials even for /readyz)."""
    try:
        context = ssl.create_default_context(cafile=ca_file) if ca_file else None
        with urllib.request.urlopen(url + "/readyz", timeout=timeout, context=context) as response:
            return response.status == 200
    except urllib.error.HTTPError as err:
        return err.code == 401
    except (urllib.error.URLError, OSError):
        return False


def up(config: ClusterConfig, root: Optional[str] = None, timeout: float = 60.0) -> ClusterState:
    """Start the cluster in a background process; returns once its API answers, its nodes are registered and
    (with the device plugin) their GPUs are allocatable.
    Raises AlreadyRunning (nothing done), PortInUse or FakeClusterError (with the log's tail); a failed start
    leaves nothing behind."""
    directory = state_dir(config.kubeconfig, root)
    existing = status(config.kubeconfig, root)
    if existing and existing[0].running:
        raise AlreadyRunning(f"a fake cluster already runs for {config.kubeconfig}: {existing[0].url} "
                             f"(pid {existing[0].pid}); nothing done")
    _refuse_foreign_kubeconfig(config.kubeconfig)
    directory.mkdir(parents=True, exist_ok=True)
    read_fd, write_fd = os.pipe()
    argv = [sys.executable, "-m", "tests.harness.fake_cluster", "run", *_config_argv(config),
            "--state-root", str(state_root(root)), "--ready-fd", str(write_fd)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    # kept open: if the child fails and removes its state directory, its log can still be read from here
    log = open(directory / "log", "a+b")  # pylint: disable=consider-using-with
    try:
        try:
            child = subprocess.Popen(argv, cwd=str(REPO_ROOT), env=env, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, pass_fds=(write_fd,), start_new_session=True)
        finally:
            os.close(write_fd)
        line = _read_line(read_fd, time.monotonic() + timeout)
        if line.startswith(READY_PREFIX):
            state = json.loads(line[len(READY_PREFIX):])
            if _api_answers(state["url"], state.get("ca_file")):
                return _state_from(directory, state)
        # it failed: make sure the child is gone, then say why
        hung = False
        try:
            code = child.wait(5 if line.startswith("ERROR ") else 0.1)
        except subprocess.TimeoutExpired:
            hung = True
            _kill_group(child.pid, 5.0, lambda: child.poll() is not None)
            code = child.wait()
        log.seek(0)
        tail = "\n".join(log.read().decode(errors="replace").splitlines()[-40:])
    finally:
        os.close(read_fd)
        log.close()
    if code != EXIT_ALREADY_RUNNING and not _lock_held(directory):
        shutil.rmtree(directory, ignore_errors=True)
    if line.startswith("ERROR "):
        code_text, message = line.split(" ", 2)[1:]
        errors = {EXIT_ALREADY_RUNNING: AlreadyRunning, EXIT_PORT_IN_USE: PortInUse}
        error = errors.get(int(code_text), FakeClusterError)
        raise error(message)
    why = f"did not become ready in {timeout:g}s (stopped it)" if hung else f"exited with code {code}"
    raise FakeClusterError(f"the fake cluster {why}; its log:\n{tail}")


def _read_line(fd: int, deadline: float) -> str:
    """One line from the child's pipe; "" on EOF (the child died) or at the deadline."""
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return ""
        readable = select.select([fd], [], [], remaining)[0]
        if not readable:
            return ""
        chunk = os.read(fd, 65536)
        if not chunk:
            return ""
        data += chunk
    return data.decode(errors="replace").split("\n", 1)[0]


def _kill_group(pid: int, grace: float, stopped: Callable[[], bool]) -> None:
    """SIGTERM the process group `pid` leads and wait until `stopped()` (its lock is released: the process
    exited; an exited process may stay a zombie until init reaps it); SIGKILL the group after `grace`
    seconds, and in any case at the end, so that nothing it started outlives it."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while not stopped() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _is_our_process(pid: int) -> bool:
    """`pid` is a fake-cluster serving process leading its own group (not a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        return b"tests.harness.fake_cluster" in cmdline and os.getpgid(pid) == pid
    except OSError:
        return False


def down(kubeconfig: str, root: Optional[str] = None, timeout: float = 15.0) -> str:
    """Stop the cluster of `kubeconfig` and everything it started; remove its kubeconfig and state, also
    after a crash. Returns one line saying what it did."""
    kubeconfig = os.path.abspath(os.path.expanduser(kubeconfig))
    directory = state_dir(kubeconfig, root)
    if not directory.exists():
        return f"no fake cluster for {kubeconfig}: nothing to stop"
    state = _read_json(directory / "state.json") or {}
    pid = state.get("pid")
    if _lock_held(directory):
        if isinstance(pid, int) and _is_our_process(pid):
            _kill_group(pid, timeout, lambda: not _lock_held(directory))
        deadline = time.monotonic() + 5
        while _lock_held(directory) and time.monotonic() < deadline:
            time.sleep(0.01)
        if _lock_held(directory):
            raise FakeClusterError(f"the fake cluster for {kubeconfig} (pid {pid}) did not stop")
        what = f"stopped the fake cluster at {state.get('url', '?')} (pid {pid})"
    else:
        what = f"the fake cluster for {kubeconfig} was not running (pid {pid} crashed or was killed)"
    _remove_leftovers(directory, state)
    return what + "; removed its kubeconfig and state"


# ---------------------------------------------------------------------- command line


def _nodes(args: argparse.Namespace) -> List[Dict[str, Any]]:
    """Node descriptions from the command line: each per-node option is given once (for every node) or once
    per --node, in the same order; what is not given keeps kubelet.NodeSpec's default."""
    if getattr(args, "nodes_json", None):
        return json.loads(args.nodes_json)
    names = args.node or [None]
    per_node = {"gpus": args.gpus, "gpu_product": args.gpu_product, "gpu_memory_mib": args.gpu_memory,
                "time_slicing_replicas": args.time_slicing}
    for option, values in per_node.items():
        if values and len(values) not in (1, len(names)):
            flag = {"gpu_memory_mib": "gpu-memory", "time_slicing_replicas": "time-slicing"}.get(
                option, option.replace("_", "-"))
            raise FakeClusterError(f"--{flag} is given {len(values)} times for {len(names)} node(s): give it "
                                   "once (for every node) or once per --node")
    nodes = []
    for index, name in enumerate(names):
        spec: Dict[str, Any] = {} if name is None else {"name": name}
        for option, values in per_node.items():
            if values:
                spec[option] = values[index] if len(values) > 1 else values[0]
        nodes.append(spec)
    if len({n.get("name") for n in nodes}) != len(nodes):
        raise FakeClusterError("node names must be unique")
    return nodes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fake-cluster",
        description="A simulated k3s GPU cluster on loopback: fake Kubernetes API server, kubelet simulator "
                    "with GPU nodes, fake vLLM servers behind Ready vLLM pods. kubectl and kubernetes.core "
                    "use its kubeconfig unchanged.")
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser, kubeconfig_required: bool = True) -> None:
        sub.add_argument("--kubeconfig", required=kubeconfig_required, help="kubeconfig path (one cluster per path)")
        sub.add_argument("--state-root", help=f"where state lives (default ${STATE_ENV}, else "
                                              "$XDG_STATE_HOME/baremetal-gpu/fake-cluster)")

    for name, text in (("up", "start in the background; returns once the API answers"),
                       ("run", "run in the foreground until Ctrl-C")):
        sub = commands.add_parser(name, help=text, description=text)
        common(sub)
        sub.add_argument("--node", action="append", metavar="NAME",
                         help="a GPU node (repeat for more; default one node, gpu-node)")
        sub.add_argument("--gpus", action="append", type=int, metavar="N",
                         help="physical GPUs per node (default 1; once for all nodes or once per --node)")
        sub.add_argument("--gpu-product", action="append", metavar="NAME",
                         help="nvidia.com/gpu.product label (default NVIDIA-GeForce-RTX-3060)")
        sub.add_argument("--gpu-memory", action="append", type=int, metavar="MIB",
                         help="nvidia.com/gpu.memory label in MiB (default 12288)")
        sub.add_argument("--time-slicing", action="append", type=int, metavar="R",
                         help="time-slicing replicas: the node's device plugin config (time-slicing-R) shares "
                              "each GPU R times (default 1)")
        sub.add_argument("--time-scale", type=float, default=1.0, metavar="F",
                         help="real seconds per simulated second: probes, back-offs, grace periods, pulls, model "
                              "loads (default 1.0: real time; 0.1 runs ten times faster)")
        sub.add_argument("--load-seconds", type=float, default=20.0, metavar="S",
                         help="simulated seconds each fake vLLM server takes to load its model (default 20, a "
                              "7-8B model from a warm cache)")
        sub.add_argument("--shutdown-seconds", type=float, default=3.0, metavar="S",
                         help="simulated seconds a fake vLLM server takes to exit after SIGTERM (default 3)")
        sub.add_argument("--no-device-plugin", dest="device_plugin", action="store_false",
                         help="bare nodes: no NVIDIA device plugin, so no nvidia.com/gpu to schedule on")
        sub.add_argument("--pull-images", action="store_true",
                         help="nodes start without images: pulls take image size / bandwidth")
        sub.add_argument("--port", type=int, default=0, help="API server port (default: a free one)")
        sub.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
        sub.add_argument("--namespace", default="default", help="the kubeconfig context's namespace")
        sub.add_argument("--nodes-json", help=argparse.SUPPRESS)
        if name == "run":
            sub.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
        else:
            sub.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for start-up")
    sub = commands.add_parser("down", help="stop it and remove its kubeconfig and state (also after a crash)")
    common(sub)
    sub = commands.add_parser("status", help="what runs (every cluster, or the one of --kubeconfig)")
    common(sub, kubeconfig_required=False)
    sub.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command in ("up", "run"):
            config = ClusterConfig(kubeconfig=args.kubeconfig, nodes=_nodes(args), host=args.host, port=args.port,
                                   namespace=args.namespace, time_scale=args.time_scale,
                                   load_seconds=args.load_seconds, shutdown_seconds=args.shutdown_seconds,
                                   device_plugin=args.device_plugin, pull_images=args.pull_images)
            if args.command == "run":
                return serve(config, args.state_root, ready_fd=args.ready_fd)
            started = time.monotonic()
            try:
                state = up(config, args.state_root, args.timeout)
            except AlreadyRunning as err:
                print(f"fake-cluster: {err}")
                return 0
            print(f"fake cluster up in {time.monotonic() - started:.2f}s: {state.url} (pid {state.pid})")
            print(f"  kubeconfig: {state.kubeconfig}   (export KUBECONFIG={state.kubeconfig})")
            for node in state.nodes:
                print(f"  node {node['name']}: {node['gpus']}x {node['gpu_product']} ({node['gpu_memory_mib']} MiB)"
                      + (f", GPU state {node['gpu_state_dir']}" if node.get("gpu_state_dir") else ""))
            print(f"  log: {state.log}")
            print(f"  pid: {state.state_dir}/pid   (state: {state.state_dir}/state.json)")
            print(f"  stop it: {sys.argv[0] if argv is None else 'fake-cluster'} down --kubeconfig {state.kubeconfig}")
            return 0
        if args.command == "down":
            print(down(args.kubeconfig, args.state_root))
            return 0
        found = status(args.kubeconfig, args.state_root)
        if args.json:
            print(json.dumps([asdict(s) for s in found], indent=2))
        elif not found:
            print("no fake cluster is running" if args.kubeconfig is None else
                  f"no fake cluster for {os.path.abspath(args.kubeconfig)}")
        for entry in [] if args.json else found:
            print(entry.describe())
        return 0 if any(s.running for s in found) or args.kubeconfig is None else 1
    except FakeClusterError as err:
        print(f"fake-cluster: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
