"""Helpers for tests of the simulated cluster: manifests, polling with deadlines, readers of pod status."""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional

Obj = Dict[str, Any]
VLLM_IMAGE = "vllm/vllm-openai:v0.8.5.post1"


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition",
             interval: float = 0.01) -> Any:
    """The predicate's first truthy value, polled until `timeout` real seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def container(name: str = "main", image: str = "busybox:1.36", command: Optional[List[str]] = None,
              args: Optional[List[str]] = None, port: Optional[int] = None, gpus: int = 0, **extra: Any) -> Obj:
    spec: Obj = {"name": name, "image": image}
    if command is not None:
        spec["command"] = command
    if args is not None:
        spec["args"] = args
    if port:
        spec["ports"] = [{"containerPort": port, "name": "http"}]
    if gpus:
        spec["resources"] = {"limits": {"nvidia.com/gpu": gpus}}
    spec.update(extra)
    return spec


def vllm_container(port: int = 8000, listen: Optional[int] = None, gpus: int = 1,
                   extra_args: Optional[List[str]] = None, image: str = VLLM_IMAGE, **extra: Any) -> Obj:
    """The fake vLLM from the vllm/vllm-openai image's entrypoint; it listens on `listen` (default `port`)."""
    args = ["--model", "Qwen/Qwen3-8B-AWQ", "--served-model-name", "home-llm", "--port", str(listen or port),
            "--max-model-len", "8192"]
    args += list(extra_args or [])
    return container("vllm", image, args=args, port=port, gpus=gpus, **extra)


def pod(name: str, *containers: Obj, namespace: str = "default", **spec: Any) -> Obj:
    meta = {"name": name, "namespace": namespace, "labels": {"app": name}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": list(containers), **spec}}


def deployment(name: str, *containers: Obj, replicas: int = 1, strategy: str = "Recreate",
               namespace: str = "default", **pod_spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "strategy": {"type": strategy},
                     "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": list(containers), **pod_spec}}}}


def service(name: str, app: str, port: int, target: Any = None, namespace: str = "default") -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"app": app}, "ports": [{"name": "http", "port": port,
                                                          "targetPort": target if target is not None else port}]}}


def pods_of(api: Any, app: str, namespace: str = "default") -> List[Obj]:
    return api.list("Pod", namespace, f"app={app}")


def ready(pod_obj: Obj) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in (pod_obj.get("status") or {}).get("conditions", []))


def status_of(pod_obj: Obj, name: Optional[str] = None, init: bool = False) -> Obj:
    """The status of container `name` (default: the first) of a pod."""
    key = "initContainerStatuses" if init else "containerStatuses"
    statuses = (pod_obj.get("status") or {}).get(key) or [{}]
    return next((s for s in statuses if name is None or s.get("name") == name), {})


def waiting_reason(pod_obj: Obj, name: Optional[str] = None, init: bool = False) -> str:
    return ((status_of(pod_obj, name, init).get("state") or {}).get("waiting") or {}).get("reason", "")


def available(api: Any, name: str, replicas: int, namespace: str = "default") -> bool:
    deploy = api.get("Deployment", name, namespace)
    status = deploy.get("status") or {}
    return status.get("availableReplicas", 0) == replicas and \
        status.get("observedGeneration") == deploy["metadata"]["generation"] and \
        status.get("updatedReplicas", 0) == replicas and status.get("replicas", 0) == replicas


def events(api: Any, reason: Optional[str] = None, namespace: str = "default",
           about: Optional[str] = None) -> List[Obj]:
    return [e for e in api.list("Event", namespace)
            if (reason is None or e["reason"] == reason) and (about is None or e["involvedObject"]["name"] == about)]


def messages(api: Any, reason: str, namespace: str = "default", about: Optional[str] = None) -> List[str]:
    return [e["message"] for e in events(api, reason, namespace, about)]
