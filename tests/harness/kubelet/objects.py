"""Small pure helpers over Kubernetes objects (plain dicts as the API serves them)."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Dict, List, Optional, Tuple

from tests.harness.fake_kube.selectors import match_expression

Obj = Dict[str, Any]
Key = Tuple[str, str]  # (namespace, name)

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def key_of(obj: Obj) -> Key:
    m = obj.get("metadata") or {}
    return (m.get("namespace", ""), m.get("name", ""))


def uid_of(obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("uid", "")


def rv_of(obj: Obj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion", 0))
    except ValueError:
        return 0


def labels_of(obj: Obj) -> Dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def controller_uid(obj: Obj) -> Optional[str]:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


def owner_ref(owner: Obj, kind: str, api_version: str) -> Obj:
    return {"apiVersion": api_version, "kind": kind, "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def template_hash(template: Obj) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in digest[:10])


def deep_copy(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def terminating(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def pod_phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase", "Pending")


def pod_finished(pod: Obj) -> bool:
    return pod_phase(pod) in ("Succeeded", "Failed")


def pod_active(pod: Obj) -> bool:
    return not terminating(pod) and not pod_finished(pod)


def pod_ready(pod: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def parse_quantity(value: Any) -> float:
    """Kubernetes resource quantities: 500m, 2, 1Gi, 512M, 1e3."""
    text = str(value).strip()
    suffixes = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60,
                "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "m": 1e-3}
    for suffix in sorted(suffixes, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * suffixes[suffix]
    return float(text)


def container_requests(container: Obj) -> Dict[str, float]:
    """Requests of one container (limits stand in for missing requests, as API defaulting does)."""
    resources = container.get("resources") or {}
    merged = dict(resources.get("limits") or {})
    merged.update(resources.get("requests") or {})
    return {name: parse_quantity(qty) for name, qty in merged.items()}


def pod_requests(pod: Obj) -> Dict[str, float]:
    """The pod's effective requests: the sum over its containers, or the largest init container's
    request where that is larger (init containers run one at a time, before the others)."""
    spec = pod.get("spec") or {}
    total: Dict[str, float] = {}
    for container in spec.get("containers") or []:
        for name, qty in container_requests(container).items():
            total[name] = total.get(name, 0.0) + qty
    for container in spec.get("initContainers") or []:
        for name, qty in container_requests(container).items():
            total[name] = max(total.get(name, 0.0), qty)
    return total


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """intstr percent-or-int resolution used by maxSurge / maxUnavailable."""
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100.0
        return int(-(-exact // 1)) if round_up else int(exact // 1)
    return int(value or 0)


def node_matches_term(term: Obj, node: Obj) -> bool:
    labels = labels_of(node)
    fields = {"metadata.name": node["metadata"]["name"]}
    return all(match_expression(e, labels) for e in term.get("matchExpressions") or []) and \
        all(match_expression(e, fields) for e in term.get("matchFields") or [])


def node_selected(pod: Obj, node: Obj) -> bool:
    spec = pod.get("spec") or {}
    labels = labels_of(node)
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms")
    if terms:
        return any(node_matches_term(t, node) for t in terms)
    return True


def untolerated_taint(pod: Obj, node: Obj) -> Optional[Obj]:
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        tolerated = False
        for tol in tolerations:
            if tol.get("effect") and tol.get("effect") != taint.get("effect"):
                continue
            if tol.get("operator") == "Exists" and (not tol.get("key") or tol.get("key") == taint.get("key")):
                tolerated = True
            elif tol.get("key") == taint.get("key") and tol.get("value", "") == taint.get("value", ""):
                tolerated = True
        if not tolerated:
            return taint
    return None


def node_ready(node: Obj) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def condition(type_: str, status: bool, reason: str = "", message: str = "",
              previous: Optional[List[Obj]] = None, probe_times: bool = False) -> Obj:
    """A status condition keeping lastTransitionTime while the status does not change."""
    value = "True" if status else "False"
    stamp = now_iso()
    for old in previous or []:
        if old.get("type") == type_ and old.get("status") == value:
            stamp = old.get("lastTransitionTime", stamp)
    cond = {"type": type_, "status": value, "lastTransitionTime": stamp}
    if probe_times:
        cond["lastProbeTime"] = None
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def compact(status: Obj, omit_zero: Tuple[str, ...]) -> Obj:
    """Drop zero-valued `omitempty` integer fields, as the Go JSON encoder does."""
    return {k: v for k, v in status.items() if not (k in omit_zero and v == 0)}


def ordinal_of(pod_name: str) -> int:
    try:
        return int(pod_name.rsplit("-", 1)[-1])
    except ValueError:
        return -1


def pod_ref(pod: Obj) -> str:
    """name_namespace(uid), as the kubelet formats a pod in messages."""
    m = pod["metadata"]
    return f"{m['name']}_{m.get('namespace', '')}({m.get('uid', '')})"
