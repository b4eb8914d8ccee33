"""`python3 -m <module> ...` as a container program: the module is read from the container's own files and run
for real, in a child process, as the pod's process would run (used for the gpu_router role's router).

What the child gets, each the way a real pod gets it, and nothing more:
- files: every volume mount of the container, copied into a private root directory; paths the child opens
  under a mount point (`/opt/...`, `/etc/...`, `/var/run/secrets/...`) are redirected there by a
  `sitecustomize` shim, and PYTHONPATH entries are rewritten to it. A module the container's files do not
  have fails as python does ("No module named ...", exit 1).
- the image's Python: the child runs isolated (`python -I -S`: no site-packages, PYTHONPATH and user site not
  read by the interpreter itself) with a sys.path of, in a real `python3 -m` order, the working directory, the
  container's PYTHONPATH (its mounted directories), the standard library, then what the image brings
  (`IMAGE_PACKAGES`: for the vllm/vllm-openai image, the distributions of vLLM's own requirements that a
  router can use: aiohttp, pydantic, PyYAML, requests, urllib3 and theirs; nothing for other images). So a
  package the role did not put on the node fails the import as it would in the image. Not simulated: the
  image's interpreter version (3.12 in vLLM 0.8) and its other packages (torch, vllm, openai, fastapi, ...).
- the ServiceAccount token: as the kubelet does for `automountServiceAccountToken` (default true), a bound
  token from the API server's TokenRequest for the pod's `serviceAccountName` (so every request the child
  makes is authorized by the fake API's RBAC as that ServiceAccount), with the cluster CA and the namespace,
  at /var/run/secrets/kubernetes.io/serviceaccount; KUBERNETES_SERVICE_HOST=10.43.0.1 and
  KUBERNETES_SERVICE_PORT=443 (k3s' `kubernetes` Service, in the API server certificate's SANs) reach the
  fake API server. A missing ServiceAccount fails the start, as pod admission would refuse the pod.
- the network: sockets to 10.43.0.1:443 reach the API server; to a pod IP and port, wherever the pod network
  says that pod listens (the API server's `/fake/v1/podnetwork` map), else connection refused; binding a
  container port listens on the real loopback port the kubelet maps podIP:<port> to.
- the GPU: NVML (the node's stand-in library reading the node's GPU ledger) only when the pod runs with the
  NVIDIA runtime (runtimeClassName whose handler is nvidia) and NVIDIA_VISIBLE_DEVICES names GPUs (or the pod
  got nvidia.com/gpu); otherwise libnvidia-ml.so.1 is not there, as in a runc container.
- /proc: `/proc/<pid>` of other processes is the node's (the ledger's export) only with `hostPID: true`;
  without it the node's processes do not exist in the container, and NVML lists none (its own PID namespace).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket

import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional

KUBERNETES_SERVICE = ("10.43.0.1", 443)
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
NVIDIA_HANDLERS = ("nvidia", "nvidia-experimental", "nvidia-cdi")

_SHIM = r'''import builtins, io, json, os, re, socket, ssl, http.client
_CFG = json.loads(os.environ.pop("BAREMETAL_GPU_SIM_POD", "{}"))
_ROOT = _CFG.get("root", "")
_MOUNTS = sorted(_CFG.get("mounts", []), key=len, reverse=True)
_PROC = _CFG.get("proc")
_BINDS = dict((int(k), v) for k, v in _CFG.get("binds", {}).items())
_STATIC = _CFG.get("static", {})
_API = _CFG.get("api")
_SELF = str(os.getpid())
_PID_PATH = re.compile(r"^/proc/(\d+)(/.*)?$")

def _path(path):
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        return path
    text = os.fspath(path)
    if not text.startswith("/"):
        return path
    match = _PID_PATH.match(text)
    if match and match.group(1) != _SELF:
        return (_PROC or (_ROOT + "/no-such-proc")) + text[len("/proc"):]
    for mount in _MOUNTS:
        if text == mount or text.startswith(mount.rstrip("/") + "/"):
            return _ROOT + text
    return path

_open, _io_open, _stat, _listdir, _os_open = builtins.open, io.open, os.stat, os.listdir, os.open
def _wrap_open(original):
    def opened(file, *args, **kwargs):
        return original(_path(file), *args, **kwargs)
    return opened
builtins.open = _wrap_open(_open)
io.open = _wrap_open(_io_open)
def _stat_w(path, *args, **kwargs):
    return _stat(_path(path), *args, **kwargs)
os.stat = _stat_w
os.listdir = lambda path=".": _listdir(_path(path))
os.open = lambda path, *args, **kwargs: _os_open(_path(path), *args, **kwargs)
_load_verify = ssl.SSLContext.load_verify_locations
def _load_verify_w(self, cafile=None, capath=None, cadata=None):
    return _load_verify(self, _path(cafile) if cafile else cafile, _path(capath) if capath else capath, cadata)
ssl.SSLContext.load_verify_locations = _load_verify_w
_load_chain = ssl.SSLContext.load_cert_chain
def _load_chain_w(self, certfile, keyfile=None, password=None):
    return _load_chain(self, _path(certfile), _path(keyfile) if keyfile else keyfile, password)
ssl.SSLContext.load_cert_chain = _load_chain_w

def _lookup(host, port):
    key = "%s:%s" % (host, port)
    if key in _STATIC:
        return _STATIC[key]
    if not _API or not host.startswith("10.42."):
        return None
    context = ssl.create_default_context(cadata=_API["ca"])
    connection = http.client.HTTPSConnection(_API["host"], _API["port"], context=context, timeout=5)
    try:
        connection.request("GET", "/fake/v1/podnetwork/%s/%s" % (host, port),
                           headers={"Authorization": "Bearer " + _API["token"]})
        answer = connection.getresponse()
        body = answer.read()
        if answer.status != 200:
            return ""
        return json.loads(body)["url"].split("://", 1)[-1]
    finally:
        connection.close()

_connect, _connect_ex, _bind = socket.socket.connect, socket.socket.connect_ex, socket.socket.bind
def _target(address):
    if isinstance(address, tuple) and len(address) >= 2 and isinstance(address[0], str):
        real = _lookup(address[0], address[1])
        if real == "":
            raise ConnectionRefusedError(111, "Connection refused")
        if real:
            host, port = real.rsplit(":", 1)
            return (host, int(port))
    return address
def connect(self, address):
    return _connect(self, _target(address))
def connect_ex(self, address):
    try:
        return _connect_ex(self, _target(address))
    except ConnectionRefusedError:
        return 111
def bind(self, address):
    if isinstance(address, tuple) and len(address) >= 2 and int(address[1]) in _BINDS:
        address = ("127.0.0.1", _BINDS[int(address[1])])
    return _bind(self, address)
socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.socket.bind = bind
'''
_SHIM_DIR: Optional[str] = None

# What each image's Python has beyond the standard library (distribution names, resolved in the test venv).
VLLM_IMAGE_PACKAGES = ("aiohttp", "aiohappyeyeballs", "aiosignal", "attrs", "frozenlist", "multidict", "propcache",
                       "yarl", "pydantic", "pydantic-core", "annotated-types", "typing-inspection",
                       "typing-extensions", "PyYAML", "requests", "certifi", "charset-normalizer", "idna", "urllib3")
IMAGE_PACKAGES = {"vllm/vllm-openai": VLLM_IMAGE_PACKAGES}
_IMAGE_DIRS: Dict[str, str] = {}
_IMAGE_LOCK = threading.Lock()

# Run `python -m module args` as the image's python would, from an isolated interpreter: sys.path is built here.
_BOOT = r'''import os, runpy, sys
_cfg = __import__("json").loads(os.environ.pop("BAREMETAL_GPU_SIM_PYTHON"))
_std = [p for p in sys.path if p]
sys.path[:] = [os.getcwd()] + [p for p in os.environ.get("PYTHONPATH", "").split(":") if p] + _std + _cfg["image"]
sys.path.insert(0, _cfg["shim"])
import sitecustomize
sys.path.remove(_cfg["shim"])
del sys.modules["sitecustomize"]
_module = sys.argv[2]
sys.argv = [sys.argv[0]] + sys.argv[3:]
runpy.run_module(_module, run_name="__main__", alter_sys=True)
'''


def image_site(image: str) -> List[str]:
    """A directory holding (links to) the distributions an image's Python brings, or none for a bare image."""
    repository = image.rsplit("@", 1)[0]
    repository = repository.rsplit(":", 1)[0] if ":" in repository.rsplit("/", 1)[-1] else repository
    names = IMAGE_PACKAGES.get(repository.replace("docker.io/", ""))
    if not names:
        return []
    from importlib import metadata  # pylint: disable=import-outside-toplevel

    with _IMAGE_LOCK:
        if repository not in _IMAGE_DIRS:
            root = tempfile.mkdtemp(prefix="image-site.")
            for name in names:
                dist = metadata.distribution(name)
                for top in sorted(set(str(f).split("/", 1)[0] for f in dist.files or [])):
                    source = str(dist.locate_file(top))
                    if top.startswith("..") or top == "__pycache__" or not os.path.exists(source):
                        continue
                    target = os.path.join(root, top)
                    if not os.path.lexists(target):
                        os.symlink(source, target)
            _IMAGE_DIRS[repository] = root
        return [_IMAGE_DIRS[repository]]


def _shim_dir() -> str:
    global _SHIM_DIR  # pylint: disable=global-statement
    if _SHIM_DIR is None or not os.path.isdir(_SHIM_DIR):
        _SHIM_DIR = tempfile.mkdtemp(prefix="kubelet-sim-pod-python.")
        with open(os.path.join(_SHIM_DIR, "sitecustomize.py"), "w", encoding="utf-8") as handle:
            handle.write(_SHIM)
    return _SHIM_DIR


_NVML_LOCK = threading.Lock()
_NVML_DIR: Optional[str] = None


def _nvml_library() -> str:
    """The node's libnvidia-ml.so.1 (the stand-in, built once per test run)."""
    global _NVML_DIR  # pylint: disable=global-statement
    with _NVML_LOCK:
        if _NVML_DIR is None:
            from tests.harness import fake_nvml  # pylint: disable=import-outside-toplevel

            _NVML_DIR = str(fake_nvml.build(tempfile.mkdtemp(prefix="kubelet-sim-nvml.")))
        return _NVML_DIR


def is_python_module(argv: List[str]) -> bool:
    import posixpath  # pylint: disable=import-outside-toplevel

    return len(argv) > 2 and posixpath.basename(argv[0]).startswith("python") and argv[1] == "-m"


class PythonModuleProgram:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.proc: Optional[subprocess.Popen] = None
        self.exit_code: Optional[int] = None
        self._early: List[str] = []
        self.listen_host = "0.0.0.0"
        ports = [int(p["containerPort"]) for p in ctx.container.get("ports") or [] if p.get("containerPort")]
        self.listen_ports = ports
        self.binds = {port: _free_port() for port in ports}
        self.root = tempfile.mkdtemp(prefix="pod-root.")
        self.log_path = os.path.join(self.root, ".container.log")
        try:
            self._materialise()
            self.token = self._service_account()
        except RuntimeError as err:
            self._early.append(str(err))
            self.exit_code = 1

    # ------------------------------------------------------------------ what the container has
    def _materialise(self) -> None:
        for mount, store in self.ctx.sandbox.files.mounts.items():
            base = self.root + mount
            os.makedirs(base, exist_ok=True)
            for rel in list(store):
                data = store[rel]
                target = os.path.join(base, rel) if rel else base
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as handle:
                    handle.write(data)

    def _api(self) -> Any:
        return self.ctx.node.ctx.client

    def _api_request(self, method: str, path: str, body: Any = None) -> Any:
        client = self._api()
        request = urllib.request.Request(client.url + path, method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"Bearer {client.token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10, context=client.ssl) as answer:
            return json.loads(answer.read() or b"null")

    def _service_account(self) -> Optional[str]:
        """The kubelet's projected token volume (kube-api-access-*): a bound token, the CA, the namespace."""
        spec = self.ctx.pod.get("spec") or {}
        if spec.get("automountServiceAccountToken") is False:
            return None
        namespace = self.ctx.pod["metadata"]["namespace"]
        account = spec.get("serviceAccountName") or "default"
        try:
            answer = self._api_request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token", {
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": 3607, "boundObjectRef": {
                    "kind": "Pod", "apiVersion": "v1", "name": self.ctx.pod["metadata"]["name"],
                    "uid": self.ctx.pod["metadata"].get("uid")}}})
            ca = self._api_request("GET", f"/api/v1/namespaces/{namespace}/configmaps/kube-root-ca.crt")
        except urllib.error.HTTPError as err:
            raise RuntimeError(f'error looking up service account {namespace}/{account}: serviceaccount '
                               f'"{account}" not found ({err.code})') from err
        token = answer["status"]["token"]
        base = self.root + SA_DIR
        os.makedirs(base, exist_ok=True)
        for name, value in (("token", token), ("ca.crt", ca["data"]["ca.crt"]), ("namespace", namespace)):
            with open(os.path.join(base, name), "w", encoding="utf-8") as handle:
                handle.write(value)
        return token

    def _gpu_env(self) -> Dict[str, str]:
        spec = self.ctx.pod.get("spec") or {}
        runtime = spec.get("runtimeClassName")
        handler = None
        if runtime:
            handler = (self.ctx.node.ctx.cache("runtimeclasses").get(("", runtime)) or {}).get("handler")
        visible = self.ctx.env.get("NVIDIA_VISIBLE_DEVICES", "")
        ledger = getattr(self.ctx.node, "ledger", None)
        if ledger is None or getattr(ledger, "export_dir", None) is None:
            return {}
        if self.ctx.gpu is None and (handler not in NVIDIA_HANDLERS or visible in ("", "void", "none")):
            return {}
        env = {"LD_LIBRARY_PATH": _nvml_library(), "FAKE_NVML_DATA": str(ledger.export_dir / "nvml.txt")}
        if not spec.get("hostPID"):
            env["FAKE_NVML_OWN_PID_NAMESPACE"] = "1"
        return env

    def _environment(self) -> Dict[str, str]:
        env = {k: v for k, v in self.ctx.env.items() if k not in ("PYTHONHOME", "LD_LIBRARY_PATH")}
        env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"] = KUBERNETES_SERVICE[0], str(KUBERNETES_SERVICE[1])
        env["KUBERNETES_SERVICE_PORT_HTTPS"] = str(KUBERNETES_SERVICE[1])
        paths = [self.root + p if p.startswith("/") else p for p in env.get("PYTHONPATH", "").split(":") if p]
        env["PYTHONPATH"] = ":".join(paths)
        env["BAREMETAL_GPU_SIM_PYTHON"] = json.dumps({"shim": _shim_dir(),
                                                      "image": image_site(self.ctx.container.get("image", ""))})
        env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        env["HOME"] = self.root
        env.update(self._gpu_env())
        client = self._api()
        api = client.url.split("://", 1)[1]
        ledger = getattr(self.ctx.node, "ledger", None)
        proc = None
        if (self.ctx.pod.get("spec") or {}).get("hostPID") and ledger is not None and ledger.export_dir is not None:
            proc = str(ledger.export_dir / "proc")
        ca = ""
        if os.path.exists(self.root + SA_DIR + "/ca.crt"):
            with open(self.root + SA_DIR + "/ca.crt", encoding="utf-8") as handle:
                ca = handle.read()
        host, port = api.rsplit(":", 1)
        pod_net = {"root": self.root, "mounts": sorted(set(list(self.ctx.sandbox.files.mounts) + [SA_DIR])),
                   "proc": proc, "binds": self.binds,
                   "static": {f"{KUBERNETES_SERVICE[0]}:{KUBERNETES_SERVICE[1]}": api},
                   "api": {"host": host, "port": int(port), "token": client.token, "ca": ca} if ca else None}
        for own in self.binds:
            for local in ("127.0.0.1", "localhost", self.ctx.ip):
                pod_net["static"][f"{local}:{own}"] = f"127.0.0.1:{self.binds[own]}"
        env["BAREMETAL_GPU_SIM_POD"] = json.dumps(pod_net)
        return env

    # ------------------------------------------------------------------ the process
    def start(self) -> Optional[str]:
        if self.exit_code is not None:
            return None
        log = open(self.log_path, "wb")  # pylint: disable=consider-using-with
        try:
            argv = [sys.executable, "-I", "-S", "-B", "-c", _BOOT, *self.ctx.argv[1:]]
            self.proc = subprocess.Popen(argv, env=self._environment(), cwd=self.root,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        finally:
            log.close()
        if not self.binds:
            return None
        return "http://127.0.0.1:%d" % self.binds[self.listen_ports[0]]

    def poll(self) -> Optional[int]:
        if self.exit_code is not None:
            return self.exit_code
        code = self.proc.poll() if self.proc else None
        if code is not None:
            self.exit_code = 128 - code if code < 0 else code
            self._cleanup()
        return self.exit_code

    def stop(self, grace_seconds: float) -> int:
        if self.exit_code is not None or self.proc is None:
            return self.exit_code if self.exit_code is not None else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(max(0.05, grace_seconds * self.ctx.time_scale))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.exit_code = 128 - code if code < 0 else code
        self._cleanup()
        return self.exit_code

    def _cleanup(self) -> None:
        try:
            with open(self.log_path, "rb") as handle:
                self._early.extend(handle.read().decode(errors="replace").splitlines())
        except OSError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)

    def logs(self) -> List[str]:
        if self.exit_code is not None:
            return list(self._early)
        try:
            with open(self.log_path, "rb") as handle:
                return list(self._early) + handle.read().decode(errors="replace").splitlines()
        except OSError:
            return list(self._early)

    def signal(self, name: str) -> bool:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


__all__ = ["PythonModuleProgram", "is_python_module"]
