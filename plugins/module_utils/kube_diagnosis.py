# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a person would look at when a workload is not ready: its status, its pods, their events and logs.

``diagnose(kube, obj)`` returns ``{object, status, events, pods: [{name, phase, node, containers, events,
logs}], text}``; ``text`` is the readable form rollout and health errors carry. A container that has
restarted shows the last lines of its previous run (why it died) as well as of the current one; an init
container that runs or failed shows its logs too. ``pod_report`` and ``events_for`` serve other
diagnoses (the device plugin's per-node one).
``service_pods`` summarises the pods behind a Service for ``vllm_health``'s failure message.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.baremetal.gpu.plugins.module_utils.kube_client import KubeError, ref
from ansible_collections.baremetal.gpu.plugins.module_utils.kube_ready import pod_ready

MAX_PODS = 3


def ready_summary(obj):
    """'1/1 available, generation 3 observed' style summary of a workload's status."""
    status = obj.get("status") or {}
    kind = obj.get("kind")
    if kind == "Deployment":
        return "%s/%s available, %s updated, %s total, generation %s observed %s" % (
            status.get("availableReplicas", 0), (obj.get("spec") or {}).get("replicas", 1),
            status.get("updatedReplicas", 0), status.get("replicas", 0),
            (obj.get("metadata") or {}).get("generation"), status.get("observedGeneration"))
    if kind == "DaemonSet":
        return "%s/%s ready" % (status.get("numberReady", 0), status.get("desiredNumberScheduled", 0))
    return json.dumps(status, sort_keys=True)[:200]


def container_state_text(status):
    """'vllm: waiting CrashLoopBackOff (back-off 10s ...), 3 restarts, last exit 1 (Error)'."""
    state = status.get("state") or {}
    parts = []
    if "waiting" in state:
        waiting = state["waiting"] or {}
        parts.append("waiting %s%s" % (waiting.get("reason", ""),
                                       " (%s)" % waiting["message"] if waiting.get("message") else ""))
    elif "terminated" in state:
        term = state["terminated"] or {}
        parts.append("terminated %s exit %s" % (term.get("reason", ""), term.get("exitCode")))
    elif "running" in state:
        parts.append("running%s" % ("" if status.get("ready") else ", not ready"))
    if status.get("restartCount"):
        parts.append("%s restarts" % status["restartCount"])
    last = (status.get("lastState") or {}).get("terminated")
    if last:
        parts.append("last exit %s (%s)" % (last.get("exitCode"), last.get("reason", "")))
    return "%s: %s" % (status.get("name"), ", ".join(parts) or "no state yet")


def event_time(event):
    return (event.get("lastTimestamp") or event.get("eventTime") or
            (event.get("metadata") or {}).get("creationTimestamp") or "")


def events_for(kube, namespace, kind, name, count):
    """The last ``count`` events about an object, oldest first, as "Type Reason: message (xN)" lines."""
    try:
        items = kube.items("v1", "Event", namespace,
                           field_selector="involvedObject.kind=%s,involvedObject.name=%s" % (kind, name))
    except KubeError:
        return []
    items.sort(key=event_time)
    return ["%s %s: %s%s" % (e.get("type", ""), e.get("reason", ""), e.get("message", ""),
                             " (x%s)" % e["count"] if (e.get("count") or 1) > 1 else "") for e in items[-count:]]


def _selector(match):
    return ",".join("%s=%s" % kv for kv in sorted(match.items()))


def _workload_lines(report, obj):
    lines = ["%s: %s" % (report["object"], report["status"])]
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("status") != "True" or cond.get("type") in ("ReplicaFailure",):
            lines.append("  condition %s=%s %s: %s" % (
                cond.get("type"), cond.get("status"), cond.get("reason", ""), cond.get("message", "")))
    lines.extend("  event: " + event for event in report["events"])
    return lines


def _container_logs(kube, namespace, pod_name, cstatus, log_lines):
    """[(label, lines or error text)]: the previous run's last lines when it restarted, then the current run's."""
    state = cstatus.get("state") or {}
    runs = []
    if cstatus.get("restartCount"):
        runs.append((True, " (previous run)"))
    if "running" in state or "terminated" in state:
        runs.append((False, ""))
    out = []
    for previous, label in runs:
        try:
            out.append((label, kube.logs(namespace, pod_name, cstatus.get("name"), tail=log_lines,
                                         previous=previous)))
        except KubeError as exc:
            out.append((label, str(exc)))
    return out


def _init_unfinished(cstatus):
    """An init container that runs, failed, or restarts after failing: its logs say why the pod waits."""
    state = cstatus.get("state") or {}
    if "terminated" in state:
        return (state["terminated"] or {}).get("exitCode") != 0
    return "running" in state or bool(cstatus.get("restartCount"))


def pod_report(kube, namespace, pod, log_lines=20, event_count=5):
    """(info, lines) for one pod: phase, node, conditions, container states, events, logs."""
    pmeta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    info = {"name": pmeta.get("name"), "phase": status.get("phase", "Unknown"),
            "node": (pod.get("spec") or {}).get("nodeName"),
            "containers": [container_state_text(s) for s in
                           (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])],
            "events": events_for(kube, namespace, "Pod", pmeta.get("name"), event_count),
            "logs": []}
    lines = ["  pod %s: phase %s%s%s" % (info["name"], info["phase"],
                                         " on " + info["node"] if info["node"] else " (not scheduled)",
                                         ", reason " + status["reason"] if status.get("reason") else "")]
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True" and cond.get("message"):
            lines.append("    condition %s: %s %s" % (cond.get("type"), cond.get("reason", ""), cond["message"]))
    lines.extend("    container " + text for text in info["containers"])
    lines.extend("    event: " + event for event in info["events"])
    unfinished_init = [c for c in status.get("initContainerStatuses") or [] if _init_unfinished(c)]
    for cstatus in unfinished_init + (status.get("containerStatuses") or []):
        for label, log in _container_logs(kube, namespace, info["name"], cstatus, log_lines):
            if not isinstance(log, list):
                lines.append("    logs of %s%s unavailable: %s" % (cstatus.get("name"), label, log))
            elif log:
                info["logs"].extend(log)
                lines.append("    last %d log lines of %s%s:" % (len(log), cstatus.get("name"), label))
                lines.extend("      | " + line for line in log)
    return info, lines


def diagnose(kube, obj, log_lines=20, event_count=5):
    """The workload's status and conditions, its newest pods' phases, events and last log lines (a Pod: its
    own phase, container states, events and last log lines, the previous run's when it restarted)."""
    meta = obj.get("metadata") or {}
    namespace, name, kind = meta.get("namespace"), meta.get("name"), obj.get("kind") or (
        "Pod" if (obj.get("spec") or {}).get("containers") is not None else None)
    if kind == "Pod":
        info, lines = pod_report(kube, namespace, obj, log_lines, event_count)
        return {"object": "Pod %s/%s" % (namespace, name), "status": info["phase"], "events": info["events"],
                "pods": [info], "text": "\n".join(lines)}
    report = {"object": ref(obj), "status": ready_summary(obj) if obj.get("status") is not None else "no status",
              "events": events_for(kube, namespace, kind, name, event_count), "pods": []}
    lines = _workload_lines(report, obj)
    match = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    pods = []
    if match:
        try:
            pods = kube.items("v1", "Pod", namespace, label_selector=_selector(match))
        except KubeError:
            pods = []
        if not pods:
            lines.append("  no pods (see the events above: scheduling, quota, image)")
    pods.sort(key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "", reverse=True)
    for pod in pods[:MAX_PODS]:
        info, pod_lines = pod_report(kube, namespace, pod, log_lines, event_count)
        report["pods"].append(info)
        lines.extend(pod_lines)
    report["text"] = "\n".join(lines)
    return report


def service_pods(kube, namespace, service):
    """Phase and readiness of the pods behind a Service (for health failure messages)."""
    svc = kube.get("v1", "Service", service, namespace)
    if svc is None:
        return "Service %s/%s does not exist" % (namespace, service)
    selector = (svc.get("spec") or {}).get("selector") or {}
    if not selector:
        return "Service %s/%s has no selector" % (namespace, service)
    pods = kube.items("v1", "Pod", namespace, label_selector=_selector(selector))
    if not pods:
        return "no pods behind Service %s/%s" % (namespace, service)
    out = []
    for pod in pods:
        status = pod.get("status") or {}
        states = "; ".join(container_state_text(s) for s in status.get("containerStatuses") or [])
        out.append("pod %s %s%s%s" % ((pod.get("metadata") or {}).get("name"), status.get("phase", "Unknown"),
                                      " ready" if pod_ready(pod) else " not ready", " (%s)" % states if states else ""))
    return "; ".join(out)
