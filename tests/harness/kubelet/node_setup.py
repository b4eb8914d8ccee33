"""What a k3s GPU node has once site.yml's node side ran, in ONE place:

- `k3s_server_objects()`: what a k3s server creates by itself that the fake API server does not: the
  `local-path` StorageClass (its packaged RuntimeClasses, `nvidia` among them, the API server bootstraps);
- `device_plugin_manifests(configs)`: the NVIDIA device plugin as the `nvidia_device_plugin` module
  renders it (its own renderer): RuntimeClass `nvidia` (created only when missing), ConfigMap
  `nvidia-device-plugin-configs` (one key per named config, `default` without sharing), ServiceAccount +
  ClusterRole + ClusterRoleBinding for the config manager, and the DaemonSet (config-manager init container
  and sidecar, plugin container, shareProcessNamespace, node selector on `nvidia.com/gpu.present`);
- `configs_for(nodes)`: `default` plus `time-slicing-<R>` for every replica count the nodes use."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List

from .volume_binding import LOCAL_PATH_CLASS

NAMESPACE = "kube-system"
NAME = "nvidia-device-plugin"
CONFIGMAP = "nvidia-device-plugin-configs"
PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.19.3"  # the module's default
Obj = Dict[str, Any]


def runtime_class(name: str, handler: str) -> Obj:
    return {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": name}, "handler": handler}


def k3s_server_objects() -> List[Obj]:
    return [dict(LOCAL_PATH_CLASS)]


def plugin_config(replicas: int = 1, rename_by_default: bool = False,
                  fail_requests_greater_than_one: bool = False) -> Obj:
    doc: Obj = {"version": "v1", "flags": {"migStrategy": "none", "failOnInitError": True}}
    if replicas > 1:
        doc["sharing"] = {"timeSlicing": {"renameByDefault": rename_by_default,
                                          "failRequestsGreaterThanOne": fail_requests_greater_than_one,
                                          "resources": [{"name": "nvidia.com/gpu", "replicas": replicas}]}}
    return doc


def configs_for(nodes: Iterable[Any]) -> Dict[str, Obj]:
    configs = {"default": plugin_config()}
    for node in nodes:
        replicas = getattr(node, "time_slicing_replicas", 1)
        if getattr(node, "gpus", 0) and replicas > 1:
            configs[f"time-slicing-{replicas}"] = plugin_config(replicas)
    return configs


def _module_configs(configs: Dict[str, Obj]) -> Dict[str, Obj]:
    """Plugin configuration documents as the nvidia_device_plugin module's `configs` option."""
    out = {}
    for name, doc in configs.items():
        sharing = (doc.get("sharing") or {}).get("timeSlicing") or {}
        replicas = max([r.get("replicas", 1) for r in sharing.get("resources") or []] or [1])
        out[name] = {"replicas": replicas, "rename_by_default": bool(sharing.get("renameByDefault")),
                     "fail_requests_greater_than_one": bool(sharing.get("failRequestsGreaterThanOne"))}
    return out


def device_plugin_manifests(configs: Dict[str, Obj], image: str = PLUGIN_IMAGE, namespace: str = NAMESPACE,
                            runtime_class_name: str = "nvidia") -> List[Obj]:
    """What the nvidia_device_plugin module applies (its own renderer, plugins/module_utils/device_plugin.py),
    preceded by the RuntimeClass it creates when missing."""
    # pylint: disable-next=import-outside-toplevel
    from ansible_collections.baremetal.gpu.plugins.module_utils import device_plugin

    options = {"version": image.rpartition(":")[2], "image": image, "namespace": namespace,
               "name": NAME, "config_map": CONFIGMAP, "runtime_class": runtime_class_name,
               "default_config": "default", "configs": _module_configs(configs)}
    return [runtime_class(runtime_class_name, "nvidia")] + device_plugin.render(
        options, device_plugin.validate_options(options))


PLURALS = {"RuntimeClass": ("node.k8s.io/v1", "runtimeclasses"), "ConfigMap": ("v1", "configmaps"),
           "ServiceAccount": ("v1", "serviceaccounts"), "StorageClass": ("storage.k8s.io/v1", "storageclasses"),
           "ClusterRole": ("rbac.authorization.k8s.io/v1", "clusterroles"),
           "ClusterRoleBinding": ("rbac.authorization.k8s.io/v1", "clusterrolebindings"),
           "DaemonSet": ("apps/v1", "daemonsets")}


async def create_missing(client: Any, objects: List[Obj], manager: str) -> None:
    """Create each object unless one of that name exists (a re-started simulator, or the role ran)."""
    for obj in objects:
        api_version, plural = PLURALS[obj["kind"]]
        namespace = obj["metadata"].get("namespace")
        await client.create(api_version, plural, namespace, obj, manager)
