# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The router's Kubernetes objects for one GPU node (the ``gpu_router`` role applies them).

Where it runs, without an image build or internet access: on the GPU node, in the vLLM image the node already
has (its ``python3`` has aiohttp, pydantic, PyYAML, requests, urllib3 and NVML's bindings), running the
collection's own module_utils from the node (hostPath of the code the ``gpu_mode`` role unpacks) with the
pure-Python packages the kubernetes client needs beyond those (hostPath of a target directory the role fills
from the wheels it already carries).

Why the pod looks as it does:
* the NVIDIA runtime (``runtimeClassName: nvidia``) with ``NVIDIA_VISIBLE_DEVICES=all`` and no
  ``nvidia.com/gpu`` request: the switch reads NVML to see GPU memory really released, and a router must not
  take a GPU (or a time-slicing replica) from the models;
* ``hostPID: true``: NVML lists only the processes of the caller's PID namespace, and the switch maps GPU
  processes to pods through ``/proc/<pid>/cgroup`` of the host;
* pinned to the node (its modes, its GPU), two replicas (one restarting still leaves one serving), a
  PodDisruptionBudget keeping one, a readiness probe on ``/healthz`` (ready once it follows the cluster).

RBAC (Role ``gpu-router-<node>``): exactly the node switcher's rules (``gpu_mode.access.rules``: its modes
ConfigMap and Lease by name, its mode-bound Deployments by name, the pod reads and label patches a drain needs)
plus list/watch of that one ConfigMap by name (following the recorded mode). On a node with standby modes, as
for its switcher (``gpu_mode.access.node_read_manifests``), ClusterRole and ClusterRoleBinding
``gpu-router-<node>`` to read its own Node (the fit of a mode whose sleepers stay resident). Nothing else.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import access, modes

MODULE = "ansible_collections.baremetal.gpu.plugins.module_utils.gpu_router.cli"
RBAC = "rbac.authorization.k8s.io"
CONFIG_DIR = "/etc/gpu-router"
DEFAULTS = {
    "replicas": 2,
    "port": 8080,
    "service": "gpu-router",
    "service_port": 8000,
    "code_dir": "/opt/baremetal-gpu/gpu-mode/lib",
    "site_dir": "/opt/baremetal-gpu/gpu-router/site",
    "runtime_class": "nvidia",
    "host_pid": True,
    "nvidia_visible_devices": "all",
    "termination_grace_seconds": 30,
    "cpu_request": "100m",
    "memory_request": "256Mi",
    "memory_limit": "1Gi",
    # what is in code_dir and site_dir (the role passes their checksums): a new version rolls the pods, which
    # otherwise keep the files they started with
    "code_version": "",
}


def name_of(node):
    return "gpu-router-" + node


def labels(node):
    return {"app.kubernetes.io/name": "gpu-router", "app.kubernetes.io/instance": name_of(node),
            "app.kubernetes.io/component": "router", "app.kubernetes.io/part-of": "baremetal-gpu",
            "baremetal.gpu/node": node}


def rules(node, deployments, standby=False):
    """The router's Role: the switcher's own rules plus watching its node's ConfigMap by name."""
    out = [dict(rule) for rule in access.rules(node, deployments, standby)]
    out.append({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [modes.configmap_name(node)],
                "verbs": ["list", "watch"]})
    return out


def build(node, namespace, deployments, image, settings=None, standby=False, **options):
    """Every object, in apply order. ``deployments``: the node's mode-bound Deployments (its modes ConfigMap);
    ``image``: an image the node has, with python3 and aiohttp (a catalog vLLM image); ``settings``: the
    router's settings (``config.DEFAULTS`` keys; node and namespace are set here)."""
    opts = dict(DEFAULTS, **options)
    name = name_of(node)
    meta_labels = labels(node)
    select = {"app.kubernetes.io/name": "gpu-router", "app.kubernetes.io/instance": name}
    config = dict(settings or {}, node=node, namespace=namespace, port=opts["port"])

    def meta(object_name):
        return {"name": object_name, "namespace": namespace, "labels": dict(meta_labels)}

    env = [{"name": "PYTHONPATH", "value": "%s:%s" % (opts["code_dir"], opts["site_dir"])},
           {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
           {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
           {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
           {"name": "NVIDIA_VISIBLE_DEVICES", "value": opts["nvidia_visible_devices"]},
           {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "utility"}]
    pod_spec = {
        "serviceAccountName": name,
        "nodeSelector": {modes.HOSTNAME_LABEL: node},
        "hostPID": bool(opts["host_pid"]),
        "terminationGracePeriodSeconds": int(opts["termination_grace_seconds"]),
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [{
            "name": "router", "image": image,
            "command": ["python3", "-m", MODULE, "--config", CONFIG_DIR + "/config.json"],
            "env": env,
            "ports": [{"name": "http", "containerPort": int(opts["port"]), "protocol": "TCP"}],
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 2,
                               "timeoutSeconds": 2, "failureThreshold": 2},
            "livenessProbe": {"httpGet": {"path": "/livez", "port": "http"}, "periodSeconds": 10,
                              "timeoutSeconds": 5, "failureThreshold": 6, "initialDelaySeconds": 30},
            "resources": {"requests": {"cpu": opts["cpu_request"], "memory": opts["memory_request"]},
                          "limits": {"memory": opts["memory_limit"]}},
            "volumeMounts": [{"name": "code", "mountPath": opts["code_dir"], "readOnly": True},
                             {"name": "site", "mountPath": opts["site_dir"], "readOnly": True},
                             {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
        }],
        "volumes": [{"name": "code", "hostPath": {"path": opts["code_dir"], "type": "Directory"}},
                    {"name": "site", "hostPath": {"path": opts["site_dir"], "type": "Directory"}},
                    {"name": "config", "configMap": {"name": name}}],
    }
    if opts["runtime_class"]:
        pod_spec["runtimeClassName"] = opts["runtime_class"]
    config_text = json.dumps(config, indent=2, sort_keys=True)
    annotations = {"baremetal.gpu/config-hash": _digest(config_text)}
    if opts["code_version"]:
        annotations["baremetal.gpu/code-version"] = str(opts["code_version"])
    node_read = access.node_read_manifests(node, namespace, account=name, labels=meta_labels) if standby else []
    return node_read + [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(name)},
        {"apiVersion": RBAC + "/v1", "kind": "Role", "metadata": meta(name), "rules": rules(node, deployments, standby)},
        {"apiVersion": RBAC + "/v1", "kind": "RoleBinding", "metadata": meta(name),
         "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(name), "data": {"config.json": config_text}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(name), "spec": {
            "replicas": int(opts["replicas"]), "selector": {"matchLabels": select},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
            "template": {"metadata": {"labels": dict(meta_labels, **select), "annotations": annotations},
                         "spec": pod_spec}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta(opts["service"]), "spec": {
            "type": "ClusterIP", "selector": select,
            "ports": [{"name": "http", "port": int(opts["service_port"]), "targetPort": "http", "protocol": "TCP"}]}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(name), "spec": {
            "minAvailable": 1, "selector": {"matchLabels": select}}},
    ]


def _digest(text):
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
