"""The pod status the kubelet writes, from the pod worker's state: phase, conditions (PodReadyToStartContainers,
Initialized, Ready, ContainersReady, PodScheduled), pod IP, QoS class, and a status per init and app
container, so that kubectl shows what a node would (Init:0/1, Init:Error, Init:CrashLoopBackOff,
PodInitializing, ContainerCreating, ErrImagePull, ImagePullBackOff, CreateContainerConfigError,
CrashLoopBackOff, Running, Terminating...)."""

from __future__ import annotations

import hashlib
from typing import Any, Dict, List

from .container_runtime import ContainerRecord
from .image_catalog import full_name
from .objects import Obj, condition, container_requests, now_iso


def qos_class(pod: Obj) -> str:
    containers = list((pod.get("spec") or {}).get("containers") or []) + \
        list((pod.get("spec") or {}).get("initContainers") or [])
    requests_any = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = resources.get("requests") or {}
        if limits or requests:
            requests_any = True
        for name in ("cpu", "memory"):
            if name not in limits or str(requests.get(name, limits.get(name))) != str(limits.get(name)):
                guaranteed = False
    if not requests_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def container_status(record: ContainerRecord) -> Obj:
    image = record.spec.get("image", "")
    out: Dict[str, Any] = {"name": record.name, "image": full_name(image) if image else image, "imageID": "",
                           "ready": record.ready, "restartCount": record.restarts,
                           "started": "running" in record.state and record.started,
                           "state": record.state,
                           "lastState": {"terminated": record.last_terminated} if record.last_terminated else {}}
    if record.container_id:
        digest = (record.image.digest if record.image and record.image.digest else
                  "sha256:" + hashlib.sha256(full_name(image).encode()).hexdigest())
        out["imageID"] = full_name(image).rsplit(":", 1)[0] + "@" + digest if "@" not in image else full_name(image)
        out["containerID"] = "containerd://" + record.container_id
    return out


def pod_status(worker: Any) -> Obj:
    pod = worker.pod
    spec = pod.get("spec") or {}
    previous = (pod.get("status") or {}).get("conditions") or []
    inits: List[ContainerRecord] = [worker.records[c["name"]] for c in spec.get("initContainers") or []]
    apps: List[ContainerRecord] = [worker.records[c["name"]] for c in spec.get("containers") or []]
    initialized = all(r.done and (r.state.get("terminated") or {}).get("exitCode") == 0 for r in inits)
    pending_init = [r.name for r in inits if not (r.done and (r.state.get("terminated") or {}).get("exitCode") == 0)]
    all_ready = bool(apps) and all(r.ready for r in apps) and not worker.terminating
    not_ready = [r.name for r in apps if not r.ready]
    reason = "" if all_ready else ("PodCompleted" if worker.phase in ("Succeeded", "Failed") else "ContainersNotReady")
    message = "" if all_ready or reason == "PodCompleted" else \
        f"containers with unready status: [{' '.join(not_ready)}]"
    status: Obj = {"phase": worker.phase}
    if worker.failed_reason:
        status["reason"], status["message"] = worker.failed_reason, worker.failed_message
    status["conditions"] = [
        condition("PodReadyToStartContainers", worker.sandbox_ready, previous=previous, probe_times=True),
        condition("Initialized", initialized, "" if initialized else "ContainersNotInitialized",
                  "" if initialized else f"containers with incomplete status: [{' '.join(pending_init)}]",
                  previous, probe_times=True),
        condition("Ready", all_ready, reason, message, previous, probe_times=True),
        condition("ContainersReady", all_ready, reason, message, previous, probe_times=True),
        condition("PodScheduled", True, previous=previous, probe_times=True),
    ]
    status["hostIP"] = worker.node.host_ip
    status["hostIPs"] = [{"ip": worker.node.host_ip}]
    if worker.ip:
        status["podIP"] = worker.ip
        status["podIPs"] = [{"ip": worker.ip}]
    status["startTime"] = worker.start_time or now_iso()
    status["qosClass"] = qos_class(pod)
    if inits:
        status["initContainerStatuses"] = [container_status(r) for r in inits]
    status["containerStatuses"] = [container_status(r) for r in apps]
    return status


def wants_gpu(container: Obj, resource_prefix: str = "nvidia.com/") -> Dict[str, int]:
    return {name: int(qty) for name, qty in container_requests(container).items()
            if name.startswith(resource_prefix) and qty}
