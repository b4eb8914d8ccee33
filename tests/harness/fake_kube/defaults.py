"""Per-kind defaulting: the parts of the apiserver's defaulting (pkg/apis/*/v1/defaults.go) and
registry strategies that clients observe (kubectl, kubernetes.core's waiters and diffing, our own
modules). Validation lives in `validation.py`.

`default(kind, obj, ctx)` fills defaults in place. Only what clients depend on is modelled;
unknown kinds pass through.
"""

from __future__ import annotations

import base64
from typing import Any, Callable, Dict, Optional


class Context:
    """What defaulting needs from the server: the clock and address allocators."""

    def __init__(self, now: Callable[[], str], allocate_cluster_ip: Callable[[], str],
                 allocate_node_port: Callable[[], int]) -> None:
        self.now = now
        self.allocate_cluster_ip = allocate_cluster_ip
        self.allocate_node_port = allocate_node_port


# ------------------------------------------------------------------ defaulting


def _probe(probe: Optional[Dict[str, Any]]) -> None:
    if not isinstance(probe, dict):
        return
    if isinstance(probe.get("httpGet"), dict):
        probe["httpGet"].setdefault("scheme", "HTTP")
        probe["httpGet"].setdefault("path", "/")
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)


def _container(container: Dict[str, Any]) -> None:
    image = str(container.get("image", ""))
    tag = image.rsplit("/", 1)[-1]
    latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
    container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    for name in ("livenessProbe", "readinessProbe", "startupProbe"):
        _probe(container.get(name))
    for env in container.get("env") or []:
        field_ref = ((env or {}).get("valueFrom") or {}).get("fieldRef")
        if isinstance(field_ref, dict):
            field_ref.setdefault("apiVersion", "v1")


def default_pod_spec(spec: Dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                _container(container)
    for volume in spec.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        for source in ("configMap", "secret"):
            if isinstance(volume.get(source), dict):
                volume[source].setdefault("defaultMode", 420)
        if isinstance(volume.get("hostPath"), dict):
            volume["hostPath"].setdefault("type", "")


def _template(obj: Dict[str, Any]) -> None:
    template = obj.setdefault("spec", {}).setdefault("template", {})
    if isinstance(template, dict):
        template.setdefault("metadata", {})
        default_pod_spec(template.setdefault("spec", {}))


def _deployment(obj: Dict[str, Any], ctx: Context) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxSurge", "25%")
        rolling.setdefault("maxUnavailable", "25%")
    _template(obj)


def _replicaset(obj: Dict[str, Any], ctx: Context) -> None:
    obj.setdefault("spec", {}).setdefault("replicas", 1)
    _template(obj)


def _statefulset(obj: Dict[str, Any], ctx: Context) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    spec.setdefault("revisionHistoryLimit", 10)
    strategy = spec.setdefault("updateStrategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        strategy.setdefault("rollingUpdate", {}).setdefault("partition", 0)
    spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
    _template(obj)


def _daemonset(obj: Dict[str, Any], ctx: Context) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("revisionHistoryLimit", 10)
    strategy = spec.setdefault("updateStrategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", 1)
        rolling.setdefault("maxSurge", 0)
    _template(obj)


def _job(obj: Dict[str, Any], ctx: Context) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    uid = obj["metadata"].get("uid")
    if uid and not spec.get("manualSelector") and "selector" not in spec:
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        labels = spec.setdefault("template", {}).setdefault("metadata", {}).setdefault("labels", {})
        labels.update({"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid,
                       "batch.kubernetes.io/job-name": obj["metadata"]["name"],
                       "job-name": obj["metadata"]["name"]})
    _template(obj)


def _cronjob(obj: Dict[str, Any], ctx: Context) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    job_template = spec.setdefault("jobTemplate", {}).setdefault("spec", {})
    default_pod_spec(job_template.setdefault("template", {}).setdefault("spec", {}))


def _service(obj: Dict[str, Any], ctx: Context) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    if spec["type"] != "ExternalName":
        spec.setdefault("sessionAffinity", "None")
        if not spec.get("clusterIP"):
            spec["clusterIP"] = ctx.allocate_cluster_ip()
        if spec["clusterIP"] != "None":
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
        else:
            spec.setdefault("clusterIPs", ["None"])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        if not isinstance(port, dict):
            continue
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
        if spec["type"] in ("NodePort", "LoadBalancer") and not port.get("nodePort"):
            port["nodePort"] = ctx.allocate_node_port()
    if spec["type"] in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    obj.setdefault("status", {}).setdefault("loadBalancer", {})


def _namespace(obj: Dict[str, Any], ctx: Context) -> None:
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {}).setdefault("phase", "Active")
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]


def _secret(obj: Dict[str, Any], ctx: Context) -> None:
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict):
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def _requests_from_limits(container: Any) -> None:
    """SetDefaults_Pod: a container that sets a limit and no request for a resource requests the limit."""
    if not isinstance(container, dict) or not isinstance(container.get("resources"), dict):
        return
    limits = container["resources"].get("limits")
    if isinstance(limits, dict) and limits:
        requests = container["resources"].get("requests")
        if not isinstance(requests, dict):
            requests = container["resources"]["requests"] = {}
        for name, value in limits.items():
            requests.setdefault(name, value)


def _pod(obj: Dict[str, Any], ctx: Context) -> None:
    spec = obj.setdefault("spec", {})
    default_pod_spec(spec)
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            _requests_from_limits(container)
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("serviceAccountName", spec.get("serviceAccount", "default"))
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    tolerations = spec.setdefault("tolerations", [])
    for taint in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(isinstance(t, dict) and t.get("key") == taint for t in tolerations):
            tolerations.append({"key": taint, "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": 300})


def _pvc(obj: Dict[str, Any], ctx: Context) -> None:
    obj.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")


def _network_policy(obj: Dict[str, Any], ctx: Context) -> None:
    spec = obj.setdefault("spec", {})
    if "policyTypes" not in spec:
        spec["policyTypes"] = ["Ingress"] + (["Egress"] if spec.get("egress") else [])


def _ingress(obj: Dict[str, Any], ctx: Context) -> None:
    obj.setdefault("status", {}).setdefault("loadBalancer", {})


DEFAULTERS: Dict[str, Callable[[Dict[str, Any], Context], None]] = {
    "Deployment": _deployment,
    "ReplicaSet": _replicaset,
    "StatefulSet": _statefulset,
    "DaemonSet": _daemonset,
    "Job": _job,
    "CronJob": _cronjob,
    "Service": _service,
    "Namespace": _namespace,
    "Secret": _secret,
    "Pod": _pod,
    "PersistentVolumeClaim": _pvc,
    "NetworkPolicy": _network_policy,
    "Ingress": _ingress,
}


def default(kind: str, obj: Dict[str, Any], ctx: Context) -> None:
    fn = DEFAULTERS.get(kind)
    if fn:
        fn(obj, ctx)


# Go serialises a status struct even when it is empty, with its non-omitempty fields as zeros.
# Clients depend on it (kubernetes.core's statefulset waiter reads status.updatedReplicas at once).
ZERO_STATUS: Dict[str, Dict[str, Any]] = {
    "StatefulSet": {"replicas": 0, "availableReplicas": 0},
    "ReplicaSet": {"replicas": 0},
    "DaemonSet": {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                  "numberReady": 0},
    "PodDisruptionBudget": {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0},
    "HorizontalPodAutoscaler": {"currentReplicas": 0, "desiredReplicas": 0},
    "PersistentVolumeClaim": {"phase": "Pending"},
    "PersistentVolume": {"phase": "Pending"},
    "Namespace": {"phase": "Active"},
    "Service": {"loadBalancer": {}},
    "Ingress": {"loadBalancer": {}},
}


def initial_status(kind: str, obj: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The status a created object starts with (clients cannot set it at creation), or None to keep
    what the client sent (nodes register with their status; events and leases have none)."""
    if kind == "Pod":
        return {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})}
    if kind in ("Node", "Event", "Lease"):
        return None
    return dict(ZERO_STATUS.get(kind, {}))


def qos_class(spec: Dict[str, Any]) -> str:
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    requests_any = limits_all = False
    guaranteed = bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            requests_any = True
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and req[r] != lim[r]):
                guaranteed = False
        limits_all = limits_all or bool(lim)
    if guaranteed:
        return "Guaranteed"
    return "Burstable" if requests_any else "BestEffort"


def keep_allocated(kind: str, new: Dict[str, Any], old: Dict[str, Any]) -> None:
    """On update, values the server allocated survive a body that leaves them out (Service IPs/ports)."""
    if kind != "Service":
        return
    old_spec, spec = old.get("spec") or {}, new.setdefault("spec", {})
    for key in ("clusterIP", "clusterIPs"):
        if key in old_spec and not spec.get(key):
            spec[key] = old_spec[key]
    old_ports = {(p.get("port"), p.get("protocol", "TCP")): p for p in old_spec.get("ports") or []
                 if isinstance(p, dict)}
    for port in spec.get("ports") or []:
        if isinstance(port, dict) and not port.get("nodePort"):
            previous = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
            if previous and previous.get("nodePort") and spec.get("type") in ("NodePort", "LoadBalancer"):
                port["nodePort"] = previous["nodePort"]
