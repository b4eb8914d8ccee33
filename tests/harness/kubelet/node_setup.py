"""What a k3s GPU node has once site.yml's node side ran, in ONE place (to be replaced by the
`nvidia_device_plugin` role's templates once they exist):

- `k3s_server_objects()`: what a k3s server creates by itself that the fake API server does not: the
  `local-path` StorageClass (its packaged RuntimeClasses, `nvidia` among them, the API server bootstraps);
- `device_plugin_manifests(configs)`: the NVIDIA device plugin as the role renders it (contract in the
  session plan): RuntimeClass `nvidia` (only when missing), ConfigMap `nvidia-device-plugin-configs` (one
  key per named config, `default` without sharing), ServiceAccount + ClusterRole + ClusterRoleBinding for
  the config manager, and the DaemonSet (config-manager init container and sidecar, plugin container,
  shareProcessNamespace, node selector on `nvidia.com/gpu.present`);
- `configs_for(nodes)`: `default` plus `time-slicing-<R>` for every replica count the nodes use."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List

import yaml

from .volume_binding import LOCAL_PATH_CLASS

NAMESPACE = "kube-system"
NAME = "nvidia-device-plugin"
CONFIGMAP = "nvidia-device-plugin-configs"
PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.17.1"
LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "baremetal-gpu"}
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


def _env(pairs: Dict[str, str]) -> List[Obj]:
    out: List[Obj] = []
    for key, value in pairs.items():
        if key == "NODE_NAME":
            out.append({"name": key, "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}})
        else:
            out.append({"name": key, "value": value})
    return out


def device_plugin_manifests(configs: Dict[str, Obj], image: str = PLUGIN_IMAGE, namespace: str = NAMESPACE,
                            runtime_class_name: str = "nvidia") -> List[Obj]:
    manager = {"NODE_NAME": "", "NODE_LABEL": "nvidia.com/device-plugin.config",
               "CONFIG_FILE_SRCDIR": "/available-configs", "CONFIG_FILE_DST": "/config/config.yaml",
               "DEFAULT_CONFIG": "default", "FALLBACK_STRATEGIES": "named,single"}
    config_mounts = [{"name": "available-configs", "mountPath": "/available-configs"},
                     {"name": "config", "mountPath": "/config"}]
    pod_spec: Obj = {
        "runtimeClassName": runtime_class_name, "priorityClassName": "system-node-critical",
        "serviceAccountName": NAME, "shareProcessNamespace": True,
        "nodeSelector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                        {"key": "CriticalAddonsOnly", "operator": "Exists"}],
        "initContainers": [{"name": f"{NAME}-init", "image": image, "command": ["config-manager"],
                            "env": _env({**manager, "ONESHOT": "true", "SEND_SIGNAL": "false"}),
                            "volumeMounts": config_mounts}],
        "containers": [
            {"name": f"{NAME}-sidecar", "image": image, "command": ["config-manager"],
             "env": _env({**manager, "ONESHOT": "false", "SEND_SIGNAL": "true", "SIGNAL": "1",
                          "PROCESS_TO_SIGNAL": "nvidia-device-plugin"}),
             "volumeMounts": config_mounts},
            {"name": f"{NAME}-ctr", "image": image, "command": ["nvidia-device-plugin"],
             "env": [{"name": "CONFIG_FILE", "value": "/config/config.yaml"}],
             "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
             "volumeMounts": [{"name": "device-plugin", "mountPath": "/var/lib/kubelet/device-plugins"},
                              {"name": "config", "mountPath": "/config"}]}],
        "volumes": [{"name": "device-plugin", "hostPath": {"path": "/var/lib/kubelet/device-plugins"}},
                    {"name": "available-configs", "configMap": {"name": CONFIGMAP}},
                    {"name": "config", "emptyDir": {}}]}
    return [
        runtime_class(runtime_class_name, "nvidia"),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CONFIGMAP, "namespace": namespace,
                                                               "labels": LABELS},
         "data": {name: yaml.safe_dump(doc, sort_keys=False) for name, doc in configs.items()}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": NAME, "namespace": namespace,
                                                                    "labels": LABELS}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": NAME, "labels": LABELS},
         "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": NAME, "labels": LABELS},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
         "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}]},
        {"apiVersion": "apps/v1", "kind": "DaemonSet",
         "metadata": {"name": NAME, "namespace": namespace, "labels": LABELS},
         "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
                  "updateStrategy": {"type": "RollingUpdate"},
                  "template": {"metadata": {"labels": dict(LABELS)}, "spec": pod_spec}}},
    ]


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
