# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait until the target mode's Deployments are ready, and give up at the first sign they never will.

A model that crashes while loading (out of memory, KV cache too small, an image that cannot start) is
not going to load on its next restart, and every minute spent waiting is a minute with nothing serving:
the switch rolls back as soon as a target pod shows a container that exited with an error, an image that
cannot be pulled, a configuration error, or a pod the scheduler cannot place. Readiness itself comes from
the kubelet's probes (the pods' startup and readiness probes), watched, not polled.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

FATAL_WAITING = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
                 "CreateContainerConfigError", "CreateContainerError", "RunContainerError")


class StartFailed(Exception):
    """A target pod will not become ready; ``pod`` is its last state."""

    def __init__(self, message, pod=None):
        self.pod = pod
        super(StartFailed, self).__init__(message)


def pod_failure(pod, crash_restarts=0):
    """Why this pod will not become ready, or None while it may still."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    name = meta.get("name")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and cond.get("reason") == "Unschedulable":
            return "pod %s cannot be scheduled: %s" % (name, cond.get("message") or "Unschedulable")
    if status.get("phase") == "Failed":
        return "pod %s failed: %s %s" % (name, status.get("reason") or "", status.get("message") or "")
    for cstatus in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        state = cstatus.get("state") or {}
        last = (cstatus.get("lastState") or {}).get("terminated")
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in FATAL_WAITING:
            return "container %s of pod %s: %s: %s" % (
                cstatus.get("name"), name, waiting.get("reason"), waiting.get("message") or "")
        terminated = state.get("terminated") or last
        if terminated and terminated.get("exitCode") not in (None, 0) and \
                int(cstatus.get("restartCount") or 0) >= crash_restarts:
            return "container %s of pod %s exited with code %s (%s)%s" % (
                cstatus.get("name"), name, terminated.get("exitCode"), terminated.get("reason") or "Error",
                ": " + terminated["message"] if terminated.get("message") else "")
    return None


def pod_ready(pod):
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def _matches(pod, match_labels):
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in match_labels.items())


def wait_started(cluster, targets, deadline, crash_restarts=0):
    """Watch the namespace's pods until each target has its replicas Ready (readiness is what puts a pod
    behind its Service); StartFailed at the first fatal pod state or at ``deadline``.

    ``targets``: ``{deployment name: (Deployment, replicas)}``. Returns seconds per Deployment.
    """
    from ansible_collections.baremetal.gpu.plugins.module_utils.kube import KubeError

    kube = cluster.kube
    started = cluster.clock()
    done = {}
    selectors = dict((name, ((target[0].get("spec") or {}).get("selector") or {}).get("matchLabels") or {})
                     for name, target in targets.items())
    pods = {}

    def evaluate():
        for name, target in targets.items():
            replicas = target[1]
            mine = [p for p in pods.values() if _matches(p, selectors[name])]
            for pod in mine:
                why = pod_failure(pod, crash_restarts)
                if why:
                    raise StartFailed(why, pod)
            if name not in done and sum(1 for p in mine if pod_ready(p)) >= replicas:
                done[name] = round(cluster.clock() - started, 3)
        return len(done) == len(targets)

    while True:
        items, rv = kube.list("v1", "Pod", cluster.namespace)
        pods = dict((p["metadata"]["name"], p) for p in items)
        if evaluate():
            return done
        try:
            for event_type, obj in kube.watch("v1", "Pod", cluster.namespace, rv, deadline, clock=cluster.clock):
                name = (obj.get("metadata") or {}).get("name")
                if event_type == "DELETED":
                    pods.pop(name, None)
                elif event_type in ("ADDED", "MODIFIED"):
                    pods[name] = obj
                else:
                    continue
                if evaluate():
                    return done
        except KubeError as exc:
            if exc.status != 410:
                raise
            continue  # too old: list again
        if cluster.clock() >= deadline:
            raise StartFailed("not ready before the deadline: %s" % ", ".join(sorted(set(targets) - set(done))))
