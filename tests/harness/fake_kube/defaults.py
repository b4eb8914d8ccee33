"""Per-kind defaulting and validation: the parts of the apiserver registry strategies that
clients observe (kubectl, kubernetes.core's waiters and diffing, our own modules).

`default(kind, obj, ctx)` fills defaults in place; `validate(kind, obj, old)` returns field
errors (422 causes). Only what clients depend on is modelled; unknown kinds pass through.
"""

from __future__ import annotations

import base64
import re
from typing import Any, Callable, Dict, List, Optional

from .errors import field_error
from .selectors import match_label_selector

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")

# kinds whose names must be DNS-1123 labels (no dots); the rest are subdomains
LABEL_NAMED = {"Namespace", "Service"}
WORKLOADS = {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"}


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


def _pod(obj: Dict[str, Any], ctx: Context) -> None:
    spec = obj.setdefault("spec", {})
    default_pod_spec(spec)
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


# ------------------------------------------------------------------ validation


def _name_errors(kind: str, name: str, prefix: str = "metadata.name") -> List[Dict[str, str]]:
    if kind in LABEL_NAMED:
        if len(name) > 63 or not DNS1123_LABEL.match(name):
            return [field_error(prefix, f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of '
                                        "lower case alphanumeric characters or '-', and must start and end with "
                                        "an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                                        "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")]
    elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        return [field_error(prefix, f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of '
                                    "lower case alphanumeric characters, '-' or '.', and must start and end with "
                                    "an alphanumeric character (e.g. 'example.com', regex used for validation is "
                                    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")]
    return []


def _labels_errors(labels: Any, prefix: str) -> List[Dict[str, str]]:
    errors = []
    if labels is None:
        return errors
    if not isinstance(labels, dict):
        return [field_error(prefix, "Invalid value: must be a map of strings", "FieldValueTypeInvalid")]
    for key, value in labels.items():
        if not QUALIFIED_NAME.match(str(key)) or len(str(key).rsplit("/", maxsplit=1)[-1]) > 63:
            errors.append(field_error(prefix, f'Invalid value: "{key}": name part must consist of alphanumeric '
                                              "characters, '-', '_' or '.', and must start and end with an "
                                              "alphanumeric character"))
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            errors.append(field_error(prefix, f'Invalid value: "{value}": a valid label must be an empty string '
                                              "or consist of alphanumeric characters, '-', '_' or '.', and must "
                                              "start and end with an alphanumeric character"))
    return errors


def _pod_spec_errors(spec: Any, prefix: str) -> List[Dict[str, str]]:
    if not isinstance(spec, dict):
        return [field_error(prefix, "Required value", "FieldValueRequired")]
    errors = []
    containers = spec.get("containers")
    if not containers:
        return [field_error(f"{prefix}.containers", "Required value", "FieldValueRequired")]
    seen = set()
    for n, container in enumerate(containers):
        where = f"{prefix}.containers[{n}]"
        if not isinstance(container, dict):
            errors.append(field_error(where, "Invalid value: must be an object", "FieldValueTypeInvalid"))
            continue
        name = container.get("name")
        if not name:
            errors.append(field_error(f"{where}.name", "Required value", "FieldValueRequired"))
        elif not DNS1123_LABEL.match(str(name)):
            errors.append(field_error(f"{where}.name", f'Invalid value: "{name}": a lowercase RFC 1123 label '
                                                       "must consist of lower case alphanumeric characters or '-'"))
        elif name in seen:
            errors.append(field_error(f"{where}.name", f'Duplicate value: "{name}"', "FieldValueDuplicate"))
        seen.add(name)
        if not container.get("image"):
            errors.append(field_error(f"{where}.image", "Required value", "FieldValueRequired"))
    return errors


def _workload_errors(kind: str, obj: Dict[str, Any], old: Optional[Dict[str, Any]]) -> List[Dict[str, str]]:
    spec = obj.get("spec") or {}
    errors = []
    selector = spec.get("selector")
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not selector:
        errors.append(field_error("spec.selector", "Required value", "FieldValueRequired"))
    elif not (selector.get("matchLabels") or selector.get("matchExpressions")):
        errors.append(field_error("spec.selector", f"Invalid value: {selector}: empty selector is invalid for "
                                                   "deployment"))
    elif not match_label_selector(selector, labels):
        rendered = "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in labels.items()) + "}"
        errors.append(field_error("spec.template.metadata.labels",
                                  f"Invalid value: {rendered}: `selector` does not match template `labels`"))
    errors += _pod_spec_errors(template.get("spec"), "spec.template.spec")
    replicas = spec.get("replicas", 0)
    if not isinstance(replicas, int) or replicas < 0:
        errors.append(field_error("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal "
                                                   "to 0"))
    strategy = spec.get("strategy") or {}
    if kind == "Deployment" and strategy.get("type") == "Recreate" and strategy.get("rollingUpdate") is not None:
        errors.append(field_error("spec.strategy.rollingUpdate",
                                  "Forbidden: may not be specified when strategy `type` is 'Recreate'",
                                  "FieldValueForbidden"))
    if kind == "Deployment" and strategy.get("type") not in ("Recreate", "RollingUpdate"):
        errors.append(field_error("spec.strategy.type", f'Unsupported value: "{strategy.get("type")}": '
                                                        'supported values: "Recreate", "RollingUpdate"',
                                  "FieldValueNotSupported"))
    if old is not None and (old.get("spec") or {}).get("selector") != selector and selector:
        errors.append(field_error("spec.selector", f"Invalid value: {selector}: field is immutable"))
    return errors


def validate(kind: str, obj: Dict[str, Any], old: Optional[Dict[str, Any]] = None) -> List[Dict[str, str]]:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    errors = _name_errors(kind, name) if name else [
        field_error("metadata.name", "Required value: name or generateName is required", "FieldValueRequired")]
    errors += _labels_errors(meta.get("labels"), "metadata.labels")
    if meta.get("annotations") is not None and not isinstance(meta.get("annotations"), dict):
        errors.append(field_error("metadata.annotations", "Invalid value: must be a map", "FieldValueTypeInvalid"))
    if kind in WORKLOADS:
        errors += _workload_errors(kind, obj, old)
    elif kind == "Pod":
        errors += _pod_spec_errors(obj.get("spec"), "spec")
    elif kind == "Job":
        spec = obj.get("spec") or {}
        template = spec.get("template") or {}
        errors += _pod_spec_errors(template.get("spec"), "spec.template.spec")
        policy = (template.get("spec") or {}).get("restartPolicy")
        if policy not in ("OnFailure", "Never"):
            errors.append(field_error("spec.template.spec.restartPolicy",
                                      'Required value: valid values: "OnFailure", "Never"', "FieldValueRequired"))
    elif kind == "Service":
        spec = obj.get("spec") or {}
        if spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None" and not spec.get("ports"):
            errors.append(field_error("spec.ports", "Required value", "FieldValueRequired"))
        for n, port in enumerate(spec.get("ports") or []):
            number = (port or {}).get("port")
            if not isinstance(number, int) or not 1 <= number <= 65535:
                errors.append(field_error(f"spec.ports[{n}].port", f"Invalid value: {number}: must be between 1 "
                                                                   "and 65535, inclusive"))
        if old is not None:
            old_ip = (old.get("spec") or {}).get("clusterIP")
            if old_ip and spec.get("clusterIP") != old_ip:
                errors.append(field_error("spec.clusterIPs[0]", f'Invalid value: ["{spec.get("clusterIP")}"]: '
                                                                "may not change once set"))
    elif kind in ("ConfigMap", "Secret"):
        for section in ("data", "binaryData"):
            for key in (obj.get(section) or {}):
                if not CONFIG_KEY.match(key):
                    errors.append(field_error(f"{section}[{key}]", f'Invalid value: "{key}": a valid config key '
                                                                   "must consist of alphanumeric characters, "
                                                                   "'-', '_' or '.'"))
    return errors


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
