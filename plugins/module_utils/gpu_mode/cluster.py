# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the switcher reads from and does to the cluster: the node's modes and mode-bound Deployments,
their pods, scaling (server-side apply of ``spec.replicas`` with the switcher's own field manager), taking
pods out of their Service, and waiting (watches, never sleep loops) until pods are gone or ready."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import time

from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import modes
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.state import FIELD_MANAGER

ANNOTATION = "baremetal.gpu/"
MERGE_PATCH = "application/merge-patch+json"


class ClusterError(Exception):
    pass


def _kube_error():
    from ansible_collections.baremetal.gpu.plugins.module_utils.kube import KubeError

    return KubeError


def selector_of(deployment):
    match = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join("%s=%s" % kv for kv in sorted(match.items()))


def annotation(deployment, key, default=None):
    return ((deployment.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION + key, default)


def workload_info(deployment):
    """What the switcher needs of a mode-bound Deployment, from the annotations the vllm role writes."""
    served = [n for n in (annotation(deployment, "served-model-names") or "").split(",") if n]
    health = (annotation(deployment, "health") or "vllm /health").split(" ", 1)
    compat = annotation(deployment, "compat")
    try:
        compat = json.loads(compat) if compat else None
    except ValueError:
        compat = None
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [{}]
    return {
        "name": deployment["metadata"]["name"],
        "served_model_names": served,
        "health_kind": health[0],
        "health_path": health[1] if len(health) > 1 else "/health",
        "health_field": annotation(deployment, "health-field") or None,
        "service": annotation(deployment, "service"),
        "service_port": int(annotation(deployment, "service-port") or 0) or None,
        "port": int(annotation(deployment, "port") or 0) or _first_port(containers[0]),
        "load_seconds": float(annotation(deployment, "load-seconds") or 0),
        "compat": compat,
        "image": containers[0].get("image"),
        "selector": selector_of(deployment),
    }


def _first_port(container):
    for port in container.get("ports") or []:
        if port.get("containerPort"):
            return int(port["containerPort"])
    return 8000


class NodeCluster:
    """The cluster as one GPU node's switcher sees it."""

    def __init__(self, kube, namespace, node, clock=time.monotonic):
        self.kube = kube
        self.namespace = namespace
        self.node = node
        self.clock = clock

    # ---- reading
    def configmap(self):
        return self.kube.get("v1", "ConfigMap", modes.configmap_name(self.node), self.namespace)

    def book(self, configmap=None):
        configmap = configmap if configmap is not None else self.configmap()
        if configmap is None:
            raise modes.ModeError("no GPU modes are defined for node %s (ConfigMap %s/%s is missing): run site.yml, "
                                  "whose vllm role writes them"
                                  % (self.node, self.namespace, modes.configmap_name(self.node)))
        return modes.book_from_configmap(configmap)

    def deployments(self, names):
        """``{name: Deployment}`` of those of ``names`` that exist (one list call)."""
        wanted = set(names)
        return dict((d["metadata"]["name"], d) for d in self.kube.items("apps/v1", "Deployment", self.namespace)
                    if d["metadata"]["name"] in wanted)

    def pods(self, deployment):
        return self.kube.items("v1", "Pod", self.namespace, label_selector=selector_of(deployment))

    def service_labels(self, deployment):
        """``{label: value}`` that put a Deployment's pods behind its Service without being part of the
        Deployment's own selector: removing them from a pod takes it out of the Service (no new requests) while
        its ReplicaSet keeps it (nothing replaces it); setting them again puts it back."""
        info = workload_info(deployment)
        if not info["service"]:
            return {}
        service = self.kube.get("v1", "Service", info["service"], self.namespace)
        selector = ((service or {}).get("spec") or {}).get("selector") or {}
        own = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        return dict((k, v) for k, v in selector.items() if k not in own)

    def service_only_labels(self, deployment):
        """The keys of ``service_labels``."""
        return sorted(self.service_labels(deployment))

    def node_object(self):
        """The Node (capacity, allocatable), or None when it cannot be read (absent, or the switcher's Role
        does not allow it)."""
        try:
            return self.kube.get("v1", "Node", self.node)
        except _kube_error():
            return None

    # ---- acting
    def scale(self, name, replicas):
        """Own ``spec.replicas`` with the switcher's field manager (the vllm role never applies it)."""
        body = {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": self.namespace}, "spec": {"replicas": int(replicas)}}
        return self.kube.apply(body, field_manager=FIELD_MANAGER, force=True)

    def kill_pods(self, deployment):
        """Delete a failed workload's pods at once (grace 0: SIGKILL, nothing to drain on a server that never
        served). Their objects go away before their processes: the memory wait, not this, says when the GPU
        is free."""
        for pod in self.pods(deployment):
            meta = pod["metadata"]
            body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                    "preconditions": {"uid": meta["uid"]}}
            try:
                self.kube.request("DELETE", self.kube.path("v1", "Pod", meta["namespace"], meta["name"]), body=body)
            except _kube_error() as exc:
                if exc.status not in (404, 409):  # gone already, or a new pod of that name
                    raise

    def set_pod_label(self, pod, key, value):
        """Set (or with None remove) one label of a pod: taking it out of its Service keeps new requests away
        while in-flight ones finish."""
        meta = pod["metadata"]
        path = self.kube.path("v1", "Pod", meta["namespace"], meta["name"])
        try:
            self.kube.request("PATCH", path, body={"metadata": {"labels": {key: value}}}, content_type=MERGE_PATCH)
        except _kube_error() as exc:
            if exc.status != 404:
                raise

    # ---- waiting
    def wait_pods_gone(self, deployments, deadline):
        """Watch until no pod of ``deployments`` is left (terminating ones included); returns the seconds.
        A pod object disappears once the kubelet has seen its containers exit, not before."""
        KubeError = _kube_error()
        started = self.clock()
        selectors = [selector_of(d) for d in deployments]
        for selector in selectors:
            while True:
                items, rv = self.kube.list("v1", "Pod", self.namespace, label_selector=selector)
                remaining = set(p["metadata"]["name"] for p in items)
                if not remaining:
                    break
                if self.clock() >= deadline:
                    raise ClusterError("pods still present: %s" % ", ".join(sorted(remaining)))
                try:
                    for event_type, obj in self.kube.watch("v1", "Pod", self.namespace, rv, deadline,
                                                           label_selector=selector, clock=self.clock):
                        if event_type == "DELETED":
                            remaining.discard(obj["metadata"]["name"])
                        elif event_type == "ADDED":
                            remaining.add(obj["metadata"]["name"])
                        if not remaining:
                            break
                except KubeError as exc:
                    if exc.status != 410:
                        raise
                if not remaining:
                    break
        return round(self.clock() - started, 3)

    def wait_pods_exist(self, deployment, count, deadline):
        """Watch until ``count`` pods of ``deployment`` exist (not terminating); returns them. A Deployment just
        scaled up has none until its ReplicaSet creates them (milliseconds later)."""
        KubeError = _kube_error()
        selector = selector_of(deployment)
        while True:
            items, rv = self.kube.list("v1", "Pod", self.namespace, label_selector=selector)
            pods = dict((p["metadata"]["name"], p) for p in items if not p["metadata"].get("deletionTimestamp"))
            if len(pods) >= count:
                return list(pods.values())
            if self.clock() >= deadline:
                raise ClusterError("%s has %d of %d pods" % (deployment["metadata"]["name"], len(pods), count))
            try:
                for event_type, obj in self.kube.watch("v1", "Pod", self.namespace, rv, deadline,
                                                       label_selector=selector, clock=self.clock):
                    name = obj["metadata"]["name"]
                    if event_type == "DELETED" or obj["metadata"].get("deletionTimestamp"):
                        pods.pop(name, None)
                    elif event_type in ("ADDED", "MODIFIED"):
                        pods[name] = obj
                    if len(pods) >= count:
                        return list(pods.values())
            except KubeError as exc:
                if exc.status != 410:
                    raise
