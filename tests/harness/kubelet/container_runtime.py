"""A container as containerd runs it for the kubelet: each run is an `Instance` (a process with a pid, its
program, its sandbox, the GPU ledger entry of its pod's GPUs), and a `ContainerRecord` keeps what the
kubelet reports across runs (state, lastState, restartCount, ready, started, logs of the previous run).

Ports: once a program runs, the pod's network maps podIP:<each port the program listens on> to the
program's real loopback address (in the pod: `PodPorts`; for the API server's service and pod proxy:
`/fake/v1/podnetwork/<ip>/<port>`). Nothing else listens: another port is "connection refused".
GPU memory: `ledger.start_process(...)` when the process starts, `ledger.exit_process(pid)` once it has
exited (never earlier: a pod object that is gone does not free memory)."""

from __future__ import annotations

import asyncio
import hashlib
import posixpath
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, List, Optional

from .image_catalog import ImageInfo
from .objects import Obj, now_iso
from .programs import ContainerContext, select_program
from .programs.sandbox import FileView, Sandbox


@dataclass
class Instance:
    record: "ContainerRecord"
    pid: int
    container_id: str
    sandbox: Sandbox
    backend: Any = None
    url: Optional[str] = None
    started_at: float = 0.0  # monotonic
    started_iso: str = ""
    gpu_pid: Optional[int] = None  # registered in the ledger
    probes: List[asyncio.Task] = field(default_factory=list)
    kill_reason: Optional[str] = None  # set by a probe: "liveness" / "startup"
    exited: Optional[int] = None
    ports: List[int] = field(default_factory=list)

    @property
    def container(self) -> Obj:
        return self.record.spec

    @property
    def started(self) -> bool:
        return self.record.started

    def running(self) -> bool:
        return self.exited is None

    def poll(self) -> Optional[int]:
        if self.exited is not None:
            return self.exited
        poll = getattr(self.backend, "poll", None)
        return poll() if callable(poll) else None


@dataclass
class ContainerRecord:
    spec: Obj
    init: bool = False
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_terminated: Optional[Obj] = None
    restarts: int = 0
    ready: bool = False
    started: bool = False
    done: bool = False  # terminated and not restarting (init container completed, or restartPolicy says so)
    instance: Optional[Instance] = None
    image: Optional[ImageInfo] = None
    container_id: str = ""
    finished_at: Optional[float] = None  # monotonic time of the last exit
    logs: List[str] = field(default_factory=list)
    previous_logs: List[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec["name"]

    def current_logs(self) -> List[str]:
        if self.instance is not None and self.instance.backend is not None:
            logs = getattr(self.instance.backend, "logs", None)
            if callable(logs):
                try:
                    lines = logs()
                    self.logs = list(lines.splitlines() if isinstance(lines, str) else lines)
                except Exception:  # a program's log must never break the kubelet
                    pass
        return list(self.logs)


def effective_argv(container: Obj, image: Optional[ImageInfo]) -> List[str]:
    """ENTRYPOINT/CMD resolution as containerd does: command replaces ENTRYPOINT (and drops CMD), args
    replace CMD."""
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    entry = list(image.entrypoint) if image else []
    cmd = list(image.cmd) if image else []
    if command:
        return command + args
    return entry + (args if args else cmd)


def container_id(pod_uid: str, name: str, restarts: int) -> str:
    return hashlib.sha256(f"{pod_uid}/{name}/{restarts}".encode()).hexdigest()


def terminated_state(code: int, started_iso: str, cid: str, reason: Optional[str] = None,
                     message: Optional[str] = None) -> Obj:
    state = {"exitCode": code, "reason": reason or ("Completed" if code == 0 else "Error"),
             "startedAt": started_iso, "finishedAt": now_iso(), "containerID": "containerd://" + cid}
    if message:
        state["message"] = message
    return state


class Runtime:
    """Starts and stops instances for one pod worker (`worker` supplies the pod, node, network, volumes)."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker
        self.node = worker.node

    async def start(self, record: ContainerRecord, env: dict, gpus: List[int]) -> Instance:
        worker, node = self.worker, self.node
        pod = worker.pod
        pid = node.next_pid()
        cid = container_id(worker.uid, record.name, record.restarts)
        mounts, read_only = worker.volumes.mounts(record.spec)
        env = dict(env, POD_IP=worker.ip or "")
        sandbox = Sandbox(FileView(mounts, read_only), env, node.clock, worker.net,
                          record.image.tools if record.image else None, pid,
                          (pod.get("spec") or {}).get("hostname") or pod["metadata"]["name"])
        argv = effective_argv(record.spec, record.image)
        instance = Instance(record, pid, cid, sandbox, started_at=node.clock.now(), started_iso=now_iso())
        claim = None
        if gpus and node.ledger is not None:
            from tests.harness.gpu_ledger import GpuClaim  # pylint: disable=import-outside-toplevel

            node.ledger.start_process(pid, posixpath.basename(argv[0]) if argv else record.name,
                                      pod_uid=worker.uid, container=record.name, container_id=cid, gpus=gpus,
                                      cmdline=argv, qos=worker.qos_class().lower())
            instance.gpu_pid = pid
            claim = GpuClaim(node.ledger, pid, list(gpus))
        ctx = ContainerContext(pod=pod, container=record.spec, argv=argv, env=env, gpu=claim, pid=pid,
                               time_scale=node.clock.scale, ip=worker.ip or "", sandbox=sandbox, node=node,
                               siblings=worker.backends, options=node.program_options)
        record.instance = instance
        record.container_id = cid
        record.logs = []
        try:
            instance.backend = await asyncio.get_running_loop().run_in_executor(None, select_program, ctx)
            url = await asyncio.get_running_loop().run_in_executor(None, instance.backend.start)
        except Exception as err:  # a program that cannot even start exits at once
            node.ctx.errors.append(f"start {worker.key} {record.name}: {err!r}")
            from .programs.basic import ExitedProgram  # pylint: disable=import-outside-toplevel

            instance.backend = ExitedProgram(1, [f"simulator: the program failed to start: {err!r}"])
            url = None
        instance.url = str(url).rstrip("/") if url else None
        if instance.url:
            await self._listen(instance)
        return instance

    async def _listen(self, instance: Instance) -> None:
        backend = instance.backend
        real = urllib.parse.urlsplit(instance.url).netloc
        host = getattr(backend, "listen_host", "0.0.0.0") or "0.0.0.0"
        for port in getattr(backend, "listen_ports", []) or []:
            self.worker.net.listen(int(port), host, real)
            instance.ports.append(int(port))
            if host not in ("127.0.0.1", "localhost", "::1") and self.worker.ip:
                await self.node.pod_network(self.worker.ip, int(port), instance.url)

    async def stop(self, instance: Instance, grace: float) -> int:
        """SIGTERM, SIGKILL after `grace` simulated seconds; the exit code. Idempotent."""
        if instance.exited is not None:
            return instance.exited
        code = await asyncio.get_running_loop().run_in_executor(None, instance.backend.stop, grace)
        await self.exited(instance, code if isinstance(code, int) else 0)
        return instance.exited  # type: ignore[return-value]

    async def exited(self, instance: Instance, code: int) -> None:
        """The process has exited: close its ports, free its GPU memory (after the ledger's release delay)."""
        if instance.exited is not None:
            return
        instance.exited = code
        instance.record.finished_at = self.node.clock.now()
        instance.record.current_logs()
        for task in instance.probes:
            task.cancel()
        for port in instance.ports:
            self.worker.net.close(port)
            if self.worker.ip:
                await self.node.pod_network(self.worker.ip, port, None)
        instance.ports.clear()
        if instance.gpu_pid is not None and self.node.ledger is not None:
            self.node.ledger.exit_process(instance.gpu_pid)
