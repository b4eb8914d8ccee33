"""A simulated k3s node: registration (labels, capacity, conditions), the node Lease heartbeat, node status
every 10 s (capacity and allocatable of device-plugin resources follow the device manager: no plugin, no
`nvidia.com/gpu`), its GPUs and their memory ledger (exported for the fake NVML under `state_dir`), its
images, host filesystem, container runtimes (RuntimeClass handlers) and the pod workers of its pods."""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from .client import MERGE, api_path
from .context import Context
from .devices import DeviceManager
from .images import ALL_PRESENT, ImageService
from .objects import Obj, now_iso
from .pod_worker import PodWorker
from .timing import BackOff
from .volumes import HostFiles

KUBELET = "kubelet"
STATUS_PERIOD = 10.0  # simulated seconds: nodeStatusUpdateFrequency
LEASE_PERIOD = 10.0  # simulated seconds: the node lease is renewed every 10 s (duration 40 s)
CONFIG_LABEL = "nvidia.com/device-plugin.config"


@dataclass
class NodeSpec:
    """One simulated node. GPU nodes carry the labels the k3s role sets (product, memory, count, present,
    and `nvidia.com/device-plugin.config` naming their device plugin config: `time-slicing-<R>` when
    `time_slicing_replicas` R > 1); their `nvidia.com/gpu` capacity comes from the device plugin."""

    name: str = "gpu-node"
    gpus: int = 1
    gpu_product: str = "NVIDIA-GeForce-RTX-3060"
    gpu_memory_mib: int = 12288
    time_slicing_replicas: int = 1
    cpu: str = "16"
    memory: str = "64Gi"
    pods: int = 110
    labels: Dict[str, str] = field(default_factory=dict)
    taints: List[Dict[str, str]] = field(default_factory=list)
    # containerd runtime handlers: k3s configures nvidia and nvidia-experimental when it finds the NVIDIA
    # container runtime (GPU nodes); None picks that default
    runtime_handlers: Optional[List[str]] = None
    images: Optional[Union[str, List[str]]] = None  # present images; None: the simulator's default

    def handlers(self) -> List[str]:
        if self.runtime_handlers is not None:
            return list(self.runtime_handlers)
        return ["runc", "crun"] + (["nvidia", "nvidia-experimental"] if self.gpus else [])

    def device_plugin_config(self) -> Optional[str]:
        if CONFIG_LABEL in self.labels:
            return self.labels[CONFIG_LABEL]
        return f"time-slicing-{self.time_slicing_replicas}" if self.gpus and self.time_slicing_replicas > 1 else None


class NodeAgent:
    def __init__(self, ctx: Context, spec: NodeSpec, index: int, kubelet_port: int, program_options: Dict[str, Any],
                 images_present: Union[str, List[str]] = ALL_PRESENT, registries: Optional[Dict[str, str]] = None,
                 pull_bandwidth: float = 50.0, state_dir: Optional[Path] = None) -> None:
        self.ctx = ctx
        self.clock = ctx.clock
        self.spec = spec
        self.name = spec.name
        self.index = index
        self.kubelet_port = kubelet_port
        self.host_ip = "127.0.0.1"
        self.program_options = program_options
        self.images = ImageService(ctx.clock, spec.images if spec.images is not None else images_present,
                                   registries, pull_bandwidth)
        self.devices = DeviceManager(ctx.clock)
        self.crash_backoff = BackOff(ctx.clock)
        self.host = HostFiles()
        self.host.makedirs("/var/lib/kubelet/device-plugins")
        self.host.files["/var/lib/kubelet/device-plugins/kubelet.sock"] = b""
        self.runtime_handlers = spec.handlers()
        self.workers: Dict[str, PodWorker] = {}
        self.state_dir = state_dir
        self.ledger = self._ledger() if spec.gpus else None
        self._pid = 1000 + 10000 * index
        self._ip = 2
        self._reported: Optional[Obj] = None

    def _ledger(self) -> Any:
        from tests.harness.gpu_ledger import RELEASE_DELAY, GpuDevice, GpuLedger, device_profile  # pylint: disable=C0415

        profile = device_profile(self.spec.gpu_product)
        devices = [GpuDevice(i, total_mib=self.spec.gpu_memory_mib, name=str(profile["name"]),
                             idle_reserved_mib=int(profile["idle_reserved_mib"]),  # type: ignore[arg-type]
                             cc=tuple(profile["cc"]), brand=int(profile["brand"]),  # type: ignore[arg-type]
                             arch=int(profile["arch"]))  # type: ignore[arg-type]
                   for i in range(self.spec.gpus)]
        return GpuLedger(self.name, devices, release_delay=RELEASE_DELAY * self.clock.scale,
                         export_dir=self.state_dir / "gpu" if self.state_dir else None)

    # ------------------------------------------------------------------ what programs ask of the node
    def labels(self) -> Dict[str, str]:
        node = self.ctx.cache("nodes").get(("", self.name)) or {}
        return dict((node.get("metadata") or {}).get("labels") or {})

    def gpu_devices(self) -> List[Any]:
        return [self.ledger.devices[i] for i in sorted(self.ledger.devices)] if self.ledger else []

    def visible_devices(self, indices: List[int]) -> Dict[str, str]:
        uuids = [self.ledger.devices[i].uuid for i in indices] if self.ledger else []
        return {"NVIDIA_VISIBLE_DEVICES": ",".join(uuids)} if uuids else {}

    def next_pid(self) -> int:
        self._pid += 1
        return self._pid

    def next_ip(self) -> str:
        self._ip += 1
        return f"10.42.{self.index}.{(self._ip - 2) % 253 + 2}"

    async def pod_network(self, ip: str, port: int, url: Optional[str]) -> None:
        """Tell the API server's proxy where podIP:port really is (None: nothing listens there any more)."""
        if self.ctx.client.closed:
            return
        path = f"/fake/v1/podnetwork/{ip}/{port}"
        try:
            if url is None:
                await self.ctx.client.request("DELETE", path)
            else:
                await self.ctx.client.request("PUT", path, {"url": url})
        except Exception as err:  # the proxy map is best effort; the pod's own view is authoritative
            self.ctx.errors.append(f"pod network {ip}:{port}: {err!r}")

    # ------------------------------------------------------------------ registration and status
    def _static_labels(self) -> Dict[str, str]:
        spec = self.spec
        labels = {"kubernetes.io/hostname": spec.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                  "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
                  "node.kubernetes.io/instance-type": "k3s"}
        if spec.gpus:
            labels.update({"nvidia.com/gpu.product": spec.gpu_product,
                           "nvidia.com/gpu.memory": str(spec.gpu_memory_mib),
                           "nvidia.com/gpu.count": str(spec.gpus), "nvidia.com/gpu.present": "true"})
            config = spec.device_plugin_config()
            if config:
                labels[CONFIG_LABEL] = config
        labels.update(spec.labels)
        return labels

    def _resources(self) -> Dict[str, Dict[str, str]]:
        spec = self.spec
        base = {"cpu": spec.cpu, "memory": spec.memory, "pods": str(spec.pods), "ephemeral-storage": "102400Mi",
                "hugepages-2Mi": "0"}
        capacity, allocatable = dict(base), dict(base)
        devices_capacity, devices_allocatable = self.devices.resources()
        capacity.update({k: str(v) for k, v in devices_capacity.items()})
        allocatable.update({k: str(v) for k, v in devices_allocatable.items()})
        return {"capacity": capacity, "allocatable": allocatable}

    async def register(self) -> None:
        spec = self.spec
        stamp = now_iso()
        conditions = [{"type": t, "status": "False", "reason": r, "message": m, "lastHeartbeatTime": stamp,
                       "lastTransitionTime": stamp}
                      for t, r, m in (("MemoryPressure", "KubeletHasSufficientMemory",
                                       "kubelet has sufficient memory available"),
                                      ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                                      ("PIDPressure", "KubeletHasSufficientPID",
                                       "kubelet has sufficient PID available"))]
        conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                           "message": "kubelet is posting ready status", "lastHeartbeatTime": stamp,
                           "lastTransitionTime": stamp})
        ident = hashlib.md5(spec.name.encode()).hexdigest()
        status = {**self._resources(), "conditions": conditions,
                  "addresses": [{"type": "InternalIP", "address": self.host_ip},
                                {"type": "Hostname", "address": spec.name}],
                  "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
                  "nodeInfo": {"machineID": ident, "systemUUID": ident, "bootID": ident,
                               "kernelVersion": "6.1.0-37-amd64", "osImage": "Debian GNU/Linux 12 (bookworm)",
                               "containerRuntimeVersion": "containerd://2.0.5-k3s1", "kubeletVersion": "v1.32.5+k3s1",
                               "kubeProxyVersion": "v1.32.5+k3s1", "operatingSystem": "linux", "architecture": "amd64"}}
        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": spec.name, "labels": self._static_labels(),
                             "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                             "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
                "spec": {"podCIDR": f"10.42.{self.index}.0/24", "podCIDRs": [f"10.42.{self.index}.0/24"],
                         **({"taints": spec.taints} if spec.taints else {})},
                "status": status}
        created = await self.ctx.client.create("v1", "nodes", None, body, KUBELET)
        if created is None:  # already registered (a restarted simulator): refresh labels and status
            await self.ctx.client.request("PATCH", api_path("v1", "nodes", None, spec.name), {
                "metadata": {"labels": body["metadata"]["labels"]}, "spec": body["spec"]}, MERGE,
                params={"fieldManager": KUBELET})
            await self.ctx.client.request("PATCH", api_path("v1", "nodes", None, spec.name, "status"),
                                          {"status": status}, MERGE, params={"fieldManager": KUBELET})
        self._reported = self._resources()
        await self._renew_lease(create=True)

    async def _renew_lease(self, create: bool = False) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        if create:
            lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": self.name, "namespace": "kube-node-lease"},
                     "spec": {"holderIdentity": self.name, "leaseDurationSeconds": 40, "renewTime": stamp}}
            await self.ctx.client.create("coordination.k8s.io/v1", "leases", "kube-node-lease", lease, KUBELET)
            return
        await self.ctx.client.request("PATCH", api_path("coordination.k8s.io/v1", "leases", "kube-node-lease",
                                                        self.name), {"spec": {"renewTime": stamp}}, MERGE,
                                      params={"fieldManager": KUBELET})

    async def status_loop(self) -> None:
        """Node status every 10 s (simulated): device-plugin capacity changes show at the next tick."""
        ticks = 0
        lease_every = max(1, int(LEASE_PERIOD / STATUS_PERIOD))
        while not self.ctx.stopping:
            await asyncio.sleep(self.clock.real(STATUS_PERIOD))
            ticks += 1
            try:
                resources = self._resources()
                if resources != self._reported:
                    await self.ctx.client.request("PATCH", api_path("v1", "nodes", None, self.name, "status"),
                                                  {"status": resources}, MERGE, params={"fieldManager": KUBELET})
                    self._reported = resources
                if ticks % lease_every == 0 and self.clock.real(LEASE_PERIOD) >= 0.5:
                    await self._renew_lease()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the next tick tries again
                if not self.ctx.stopping:
                    self.ctx.errors.append(f"node status {self.name}: {err!r}")

    # ------------------------------------------------------------------ pods
    def sync_pods(self) -> None:
        """Start a worker for each pod bound here, pass updates on, stop those whose object is gone."""
        seen = set()
        for pod in list(self.ctx.cache("pods").values()):
            if (pod.get("spec") or {}).get("nodeName") != self.name:
                continue
            uid = pod["metadata"]["uid"]
            seen.add(uid)
            worker = self.workers.get(uid)
            if worker is None:
                if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                    continue
                worker = self.workers[uid] = PodWorker(self, pod)
                worker.task = self.ctx.spawn(worker.run())
            else:
                worker.update(pod)
        for uid, worker in list(self.workers.items()):
            if uid not in seen:
                worker.vanish()
                if worker.task is None or worker.task.done():
                    del self.workers[uid]
                    self.ctx.events.forget(uid)

    async def shutdown(self) -> None:
        for worker in list(self.workers.values()):
            worker.vanish()
        tasks = [w.task for w in self.workers.values() if w.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.ledger is not None:
            self.ledger.close()
