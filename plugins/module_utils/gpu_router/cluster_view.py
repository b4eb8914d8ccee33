# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the router follows in the cluster, each through a list then a watch (a thread per kind, resumed from the
last resourceVersion, listed again after 410 Gone), never by polling:

* the node's ConfigMap ``gpu-mode-<node>`` (watched by name): the mode book and the recorded mode;
* the namespace's Deployments: served names and load times of the mode-bound ones (routing);
* the namespace's Pods: where each Deployment's ready servers are (pod IP and port).

A pod receives requests when it is Ready, not terminating, and carries every label of its Deployment's pod
template: the switch's drain removes the Service label from outgoing pods, and the router stops sending them
new requests at the same moment their Service does. Requests go to the pod IP directly (as kube-proxy would
send them), so the router needs neither cluster DNS nor the API server's proxy on the request path.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
import time

from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import modes as modes_mod
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import state as state_mod
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.cluster import workload_info
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_router.routing import RouteTable

WATCH_SECONDS = 50.0


def _ready(pod):
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp") or not (pod.get("status") or {}).get("podIP"):
        return False
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def _carries(pod, labels):
    own = (pod.get("metadata") or {}).get("labels") or {}
    return all(own.get(k) == v for k, v in labels.items())


class ClusterView:
    """``kube_factory()`` gives each watcher thread its own client; ``on_change(kind)`` is called (from those
    threads) after every change."""

    def __init__(self, kube_factory, namespace, node, on_change=None, log=None, clock=time.monotonic):
        self.kube_factory = kube_factory
        self.namespace = namespace
        self.node = node
        self.on_change = on_change or (lambda kind: None)
        self.log = log or (lambda event, **fields: None)
        self.clock = clock
        self._lock = threading.Lock()
        self._configmap = None
        self._deployments = {}
        self._pods = {}
        self._table = None
        self._stop = threading.Event()
        self._threads = []
        self.synced = dict((k, threading.Event()) for k in ("configmap", "deployments", "pods"))
        self.errors = {}

    # ------------------------------------------------------------------ reading
    def is_synced(self):
        return all(e.is_set() for e in self.synced.values())

    def recorded_mode(self):
        with self._lock:
            return state_mod.read(self._configmap)["mode"] if self._configmap else None

    def book(self):
        with self._lock:
            configmap = self._configmap
        if configmap is None:
            return None
        try:
            return modes_mod.book_from_configmap(configmap)
        except modes_mod.ModeError:
            return None

    def table(self):
        with self._lock:
            if self._table is not None:
                return self._table
            configmap, deployments = self._configmap, dict(self._deployments)
        book = None
        if configmap is not None:
            try:
                book = modes_mod.book_from_configmap(configmap)
            except modes_mod.ModeError as exc:
                self.log("bad_modes", level="error", error=str(exc))
        bound = set(modes_mod.bound_deployments(book)) if book else set()
        table = RouteTable(book, dict((n, d) for n, d in deployments.items() if n in bound))
        with self._lock:
            self._table = table
        return table

    def upstreams(self, deployment_name):
        """``["ip:port", ...]`` of the ready servers of a Deployment, in a stable order."""
        with self._lock:
            deployment = self._deployments.get(deployment_name)
            pods = list(self._pods.values())
        if deployment is None:
            return []
        spec = deployment.get("spec") or {}
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        template = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        port = workload_info(deployment)["port"]
        wanted = dict(template, **selector)
        return sorted("%s:%d" % (p["status"]["podIP"], port) for p in pods if _carries(p, wanted) and _ready(p))

    # ------------------------------------------------------------------ following
    def start(self):
        name = modes_mod.configmap_name(self.node)
        specs = (("configmap", "v1", "ConfigMap", "metadata.name=%s" % name, self._set_configmap),
                 ("deployments", "apps/v1", "Deployment", None, self._set_deployments),
                 ("pods", "v1", "Pod", None, self._set_pods))
        for kind, api_version, k8s_kind, field_selector, apply in specs:
            thread = threading.Thread(target=self._follow, name="watch-%s" % kind, daemon=True,
                                      args=(kind, api_version, k8s_kind, field_selector, apply))
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self):
        self._stop.set()

    def wait_synced(self, timeout):
        deadline = self.clock() + timeout
        for event in self.synced.values():
            if not event.wait(max(0.0, deadline - self.clock())):
                return False
        return True

    def _follow(self, kind, api_version, k8s_kind, field_selector, apply):
        from ansible_collections.baremetal.gpu.plugins.module_utils.kube import KubeError

        backoff = 0.2
        kube = None
        while not self._stop.is_set():
            try:
                if kube is None:
                    kube = self.kube_factory()
                items, version = kube.list(api_version, k8s_kind, self.namespace, field_selector=field_selector)
                apply("LIST", items)
                self.synced[kind].set()
                self.errors.pop(kind, None)
                backoff = 0.2
                while not self._stop.is_set():
                    deadline = self.clock() + WATCH_SECONDS
                    for event_type, obj in kube.watch(api_version, k8s_kind, self.namespace, version, deadline,
                                                      field_selector=field_selector, clock=self.clock):
                        version = (obj.get("metadata") or {}).get("resourceVersion") or version
                        if event_type != "BOOKMARK":
                            apply(event_type, obj)
                        if self._stop.is_set():
                            return
            except KubeError as exc:
                if exc.status == 410:
                    continue  # too old: list again
                self.errors[kind] = str(exc)
                self.log("watch_failed", level="warning", kind=k8s_kind, error=str(exc), retry_in=backoff)
                self._stop.wait(backoff)  # retried with back-off (the API server may be restarting)
                backoff = min(backoff * 2, 5.0)

    def _changed(self, kind):
        with self._lock:
            self._table = None
        try:
            self.on_change(kind)
        except Exception as exc:  # pylint: disable=broad-except  # a listener must not stop the watch
            self.log("listener_failed", level="error", error=str(exc))

    def _set_configmap(self, event_type, obj):
        with self._lock:
            if event_type == "LIST":
                self._configmap = obj[0] if obj else None
            elif event_type == "DELETED":
                self._configmap = None
            else:
                self._configmap = obj
        self._changed("configmap")

    def _set_deployments(self, event_type, obj):
        self._set_many(self._deployments, event_type, obj)
        self._changed("deployments")

    def _set_pods(self, event_type, obj):
        self._set_many(self._pods, event_type, obj)
        self._changed("pods")

    def _set_many(self, store, event_type, obj):
        with self._lock:
            if event_type == "LIST":
                store.clear()
                store.update((o["metadata"]["name"], o) for o in obj)
            elif event_type == "DELETED":
                store.pop(obj["metadata"]["name"], None)
            else:
                store[obj["metadata"]["name"]] = obj
