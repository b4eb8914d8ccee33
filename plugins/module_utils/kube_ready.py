# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What "ready" and "failed" mean for each workload kind: small pure predicates over the object's status.

After kubernetes.core's waiter, with the same precision: a rollout is done only once the controller has
observed the new generation (``status.observedGeneration`` caught up with ``metadata.generation``).
``READY`` and ``FAILED`` map a kind to its predicate; a failed predicate returns the reason, else None.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def _condition(obj, type_):
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def generation_observed(obj):
    """The controller has seen the object's latest spec (status.observedGeneration caught up)."""
    return (obj.get("status") or {}).get("observedGeneration", 0) >= (obj.get("metadata") or {}).get("generation", 0)


def deployment_ready(obj):
    """All replicas updated, available and nothing old left, for the generation the controller observed."""
    status = obj.get("status") or {}
    wanted = (obj.get("spec") or {}).get("replicas", 1)
    if not generation_observed(obj):
        return False
    return (status.get("updatedReplicas", 0) == wanted and status.get("replicas", 0) == wanted
            and status.get("availableReplicas", 0) == wanted and not status.get("unavailableReplicas"))


def deployment_failed(obj):
    """The controller gave up (progressDeadlineSeconds passed): a message, else None."""
    cond = _condition(obj, "Progressing")
    if cond and cond.get("status") == "False" and cond.get("reason") == "ProgressDeadlineExceeded":
        return cond.get("message") or "progress deadline exceeded"
    return None


def daemonset_ready(obj):
    status = obj.get("status") or {}
    if not generation_observed(obj):
        return False
    desired = status.get("desiredNumberScheduled", 0)
    return (status.get("updatedNumberScheduled", 0) == desired and status.get("numberReady", 0) == desired
            and status.get("numberAvailable", 0) == desired)


def statefulset_ready(obj):
    status = obj.get("status") or {}
    wanted = (obj.get("spec") or {}).get("replicas", 1)
    if not generation_observed(obj):
        return False
    return (status.get("readyReplicas", 0) == wanted and status.get("updatedReplicas", 0) == wanted
            and status.get("currentRevision") == status.get("updateRevision"))


def job_complete(obj):
    cond = _condition(obj, "Complete")
    return bool(cond and cond.get("status") == "True")


def job_failed(obj):
    cond = _condition(obj, "Failed")
    if cond and cond.get("status") == "True":
        return cond.get("message") or cond.get("reason") or "job failed"
    return None


def pod_ready(obj):
    cond = _condition(obj, "Ready")
    return bool(cond and cond.get("status") == "True")


READY = {
    "Deployment": deployment_ready,
    "DaemonSet": daemonset_ready,
    "StatefulSet": statefulset_ready,
    "Job": job_complete,
    "Pod": pod_ready,
}

FAILED = {
    "Deployment": deployment_failed,
    "Job": job_failed,
}
