"""`meta.k8s.io/v1 Table` rendering, which kubectl asks for when printing human output.

Columns per kind follow kube-apiserver's printers for the kinds people look at; any other kind
gets NAME and AGE like a resource without printer columns.
"""

from __future__ import annotations

import datetime
from typing import Any, Callable, Dict, List, Optional, Tuple

from .selectors import selector_to_string

Column = Tuple[str, str, int, Callable[[Dict[str, Any]], Any]]  # (name, type, priority, cell)


def _age(obj: Dict[str, Any]) -> str:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    if not stamp:
        return "<unknown>"
    created = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    seconds = int((datetime.datetime.now(datetime.timezone.utc) - created).total_seconds())
    if seconds < 120:
        return f"{max(seconds, 0)}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _name(obj: Dict[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("name", "")


def _pod_ready(obj: Dict[str, Any]) -> str:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    total = len((obj.get("spec") or {}).get("containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _pod_status(obj: Dict[str, Any]) -> str:
    status = obj.get("status") or {}
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated", {}).get("reason"):
            reason = state["terminated"]["reason"]
    return reason


def _restarts(obj: Dict[str, Any]) -> int:
    return sum(int(cs.get("restartCount", 0)) for cs in (obj.get("status") or {}).get("containerStatuses") or [])


def _node_status(obj: Dict[str, Any]) -> str:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return "Ready" if cond.get("status") == "True" else "NotReady"
    return "Unknown"


def _ports(obj: Dict[str, Any]) -> str:
    out = []
    for port in (obj.get("spec") or {}).get("ports") or []:
        text = str(port.get("port"))
        if port.get("nodePort"):
            text += f":{port['nodePort']}"
        out.append(f"{text}/{port.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _status(path: str, default: Any = 0) -> Callable[[Dict[str, Any]], Any]:
    return lambda obj: (obj.get("status") or {}).get(path, default)


def _event_age(obj: Dict[str, Any]) -> str:
    stamp = obj.get("lastTimestamp") or (obj.get("metadata") or {}).get("creationTimestamp")
    return _age({"metadata": {"creationTimestamp": stamp}})


def _event_object(obj: Dict[str, Any]) -> str:
    involved = obj.get("involvedObject") or {}
    return f"{involved.get('kind', '').lower()}/{involved.get('name', '')}"


NAME: Column = ("Name", "string", 0, _name)
AGE: Column = ("Age", "string", 0, _age)

COLUMNS: Dict[str, List[Column]] = {
    "Pod": [NAME, ("Ready", "string", 0, _pod_ready), ("Status", "string", 0, _pod_status),
            ("Restarts", "string", 0, _restarts), AGE,
            ("IP", "string", 1, lambda o: (o.get("status") or {}).get("podIP") or "<none>"),
            ("Node", "string", 1, lambda o: (o.get("spec") or {}).get("nodeName") or "<none>")],
    "Deployment": [NAME, ("Ready", "string", 0,
                          lambda o: f"{_status('readyReplicas')(o)}/{(o.get('spec') or {}).get('replicas', 0)}"),
                   ("Up-to-date", "integer", 0, _status("updatedReplicas")),
                   ("Available", "integer", 0, _status("availableReplicas")), AGE,
                   ("Selector", "string", 1, lambda o: selector_to_string((o.get("spec") or {}).get("selector")))],
    "ReplicaSet": [NAME, ("Desired", "integer", 0, lambda o: (o.get("spec") or {}).get("replicas", 0)),
                   ("Current", "integer", 0, _status("replicas")), ("Ready", "integer", 0, _status("readyReplicas")),
                   AGE],
    "StatefulSet": [NAME, ("Ready", "string", 0,
                           lambda o: f"{_status('readyReplicas')(o)}/{(o.get('spec') or {}).get('replicas', 0)}"),
                    AGE],
    "DaemonSet": [NAME, ("Desired", "integer", 0, _status("desiredNumberScheduled")),
                  ("Current", "integer", 0, _status("currentNumberScheduled")),
                  ("Ready", "integer", 0, _status("numberReady")),
                  ("Up-to-date", "integer", 0, _status("updatedNumberScheduled")),
                  ("Available", "integer", 0, _status("numberAvailable")), AGE],
    "Node": [NAME, ("Status", "string", 0, _node_status),
             ("Roles", "string", 0, lambda o: ",".join(sorted(
                 k.split("/", 1)[1] for k in ((o.get("metadata") or {}).get("labels") or {})
                 if k.startswith("node-role.kubernetes.io/"))) or "<none>"),
             AGE, ("Version", "string", 0, lambda o: ((o.get("status") or {}).get("nodeInfo") or {})
                   .get("kubeletVersion", ""))],
    "Namespace": [NAME, ("Status", "string", 0, _status("phase", "")), AGE],
    "Service": [NAME, ("Type", "string", 0, lambda o: (o.get("spec") or {}).get("type", "")),
                ("Cluster-IP", "string", 0, lambda o: (o.get("spec") or {}).get("clusterIP", "")),
                ("External-IP", "string", 0, lambda o: "<none>"), ("Port(s)", "string", 0, _ports), AGE],
    "Endpoints": [NAME, ("Endpoints", "string", 0, lambda o: ",".join(
        f"{a.get('ip')}:{p.get('port')}" for s in o.get("subsets") or [] for a in s.get("addresses") or []
        for p in s.get("ports") or []) or "<none>"), AGE],
    "Event": [("Last Seen", "string", 0, _event_age),
              ("Type", "string", 0, lambda o: o.get("type", "")),
              ("Reason", "string", 0, lambda o: o.get("reason", "")),
              ("Object", "string", 0, _event_object),
              ("Message", "string", 0, lambda o: o.get("message", ""))],
}


def columns_for(kind: str) -> List[Column]:
    return COLUMNS.get(kind, [NAME, AGE])


def partial_metadata(obj: Dict[str, Any]) -> Dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def table(kind: str, objects: List[Dict[str, Any]], resource_version: str, include_object: str = "Metadata",
          headers: bool = True, continue_token: Optional[str] = None) -> Dict[str, Any]:
    cols = columns_for(kind)
    out: Dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                           "metadata": {"resourceVersion": resource_version}}
    if continue_token:
        out["metadata"]["continue"] = continue_token
    if headers:
        out["columnDefinitions"] = [
            {"name": name, "type": type_, "format": "name" if name == "Name" else "", "description": "",
             "priority": priority} for name, type_, priority, _cell in cols]
    else:
        out["columnDefinitions"] = []
    rows = []
    for obj in objects:
        row: Dict[str, Any] = {"cells": [column[3](obj) for column in cols]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = partial_metadata(obj)
        rows.append(row)
    out["rows"] = rows
    return out
