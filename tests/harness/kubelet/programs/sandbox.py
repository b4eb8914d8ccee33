"""What a command run "inside" a container can touch: its files (the pod's volumes and its own writable
layer), its environment, the image's tools, the pod's network (localhost and the pod IP reach only the
ports a process of the pod listens on), and signals (SIGTERM, SIGKILL) as threading events."""

from __future__ import annotations

import posixpath
import threading
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Optional, Tuple

from ..timing import SimClock

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "0.0.0.0", "")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class FileView:
    """A container's filesystem: mounts (mount path -> a dict of relative path -> bytes, shared with the
    volume) over the container's own writable layer."""

    def __init__(self, mounts: Optional[Dict[str, Dict[str, bytes]]] = None,
                 read_only: Optional[set] = None) -> None:
        self.mounts = dict(mounts or {})
        self.read_only = set(read_only or ())
        self.layer: Dict[str, bytes] = {}
        self.lock = threading.RLock()

    def _locate(self, path: str):
        path = posixpath.normpath("/" + path.lstrip("/"))
        for mount in sorted(self.mounts, key=len, reverse=True):
            if path == mount or path.startswith(mount.rstrip("/") + "/"):
                return mount, self.mounts[mount], path[len(mount):].lstrip("/")
        return None, self.layer, path

    def read(self, path: str) -> Optional[bytes]:
        with self.lock:
            _mount, store, rel = self._locate(path)
            return store.get(rel)

    def write(self, path: str, data: bytes) -> None:
        with self.lock:
            mount, store, rel = self._locate(path)
            if mount in self.read_only:
                raise PermissionError(f"{path}: Read-only file system")
            store[rel] = data

    def remove(self, path: str) -> bool:
        with self.lock:
            mount, store, rel = self._locate(path)
            if mount in self.read_only:
                raise PermissionError(f"{path}: Read-only file system")
            return store.pop(rel, None) is not None

    def is_dir(self, path: str) -> bool:
        with self.lock:
            norm = posixpath.normpath("/" + path.lstrip("/"))
            if norm in self.mounts or norm == "/":
                return True
            _mount, store, rel = self._locate(path)
            prefix = rel.rstrip("/") + "/"
            return any(k.startswith(prefix) for k in store)

    def exists(self, path: str) -> bool:
        return self.read(path) is not None or self.is_dir(path)

    def listdir(self, path: str) -> List[str]:
        with self.lock:
            _mount, store, rel = self._locate(path)
            prefix = (rel.rstrip("/") + "/") if rel else ""
            names = {k[len(prefix):].split("/", 1)[0] for k in store if k.startswith(prefix)}
            norm = posixpath.normpath("/" + path.lstrip("/"))
            names |= {m[len(norm):].lstrip("/").split("/", 1)[0] for m in self.mounts
                      if m.startswith(norm.rstrip("/") + "/")}
            return sorted(n for n in names if n)


class PodPorts:
    """The ports processes of one pod listen on: port -> (the address they bound, the real loopback address
    serving it). Inside the pod, localhost and the pod IP reach them; from outside, only the pod IP and
    only when the process did not bind to loopback."""

    def __init__(self, ip: str) -> None:
        self.ip = ip
        self._listen: Dict[int, Tuple[str, str]] = {}
        self.lock = threading.Lock()

    def listen(self, port: int, bind_host: str, real_address: str) -> None:
        with self.lock:
            self._listen[int(port)] = (bind_host, real_address)

    def close(self, port: int) -> None:
        with self.lock:
            self._listen.pop(int(port), None)

    def ports(self) -> List[int]:
        with self.lock:
            return sorted(self._listen)

    def resolve(self, host: str, port: int, inside: bool = True) -> Optional[str]:
        with self.lock:
            entry = self._listen.get(int(port))
        if entry is None:
            return None
        bind, real = entry
        if inside and host in LOCAL_HOSTS:
            return real
        if host == self.ip and bind not in LOOPBACK:
            return real
        return None

    def mapping(self) -> Dict[str, str]:
        """host:port -> real address, as seen from inside the pod (for a child process's socket shim)."""
        out = {}
        for port in self.ports():
            for host in ("localhost", "127.0.0.1", self.ip):
                target = self.resolve(host, port)
                if target:
                    out[f"{host}:{port}"] = target
        return out


@dataclass
class Sandbox:
    files: FileView
    env: Dict[str, str]
    clock: SimClock
    net: PodPorts
    tools: Optional[FrozenSet[str]] = None  # None: the image's tools are not known (taken as present)
    pid: int = 1
    hostname: str = "pod"
    killed: threading.Event = field(default_factory=threading.Event)  # SIGKILL
    term: threading.Event = field(default_factory=threading.Event)  # SIGTERM delivered

    def has_tool(self, name: str) -> bool:
        if self.tools is None:
            return True
        return name in self.tools or posixpath.basename(name) in self.tools
