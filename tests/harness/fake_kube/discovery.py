"""Discovery documents (/version, /api, /apis, APIResourceLists) and a minimal OpenAPI, all
derived from the resource table."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, List, Optional

from .resources import ResourceTable

KUBE_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.5+k3s1",
                "gitCommit": "8e8f2a4726fdb4ca628eb62b2a526b64d0e6a763", "gitTreeState": "clean",
                "buildDate": "2025-05-20T00:00:00Z", "goVersion": "go1.23.8", "compiler": "gc",
                "platform": "linux/amd64"}


def api_versions(server_address: str) -> Dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _group(name: str, versions: List[str]) -> Dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(table: ResourceTable) -> Dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group(name, versions) for name, versions in table.groups()]}


def api_group(table: ResourceTable, name: str) -> Optional[Dict[str, Any]]:
    for group, versions in table.groups():
        if group == name:
            return dict(_group(group, versions), kind="APIGroup", apiVersion="v1")
    return None


def resource_list(table: ResourceTable, group: str, version: str) -> Dict[str, Any]:
    resources = []
    for res in table.in_group_version(group, version):
        resources.extend(res.discovery())
    out = {"kind": "APIResourceList", "groupVersion": f"{group}/{version}" if group else version,
           "resources": resources}
    if group:
        out["apiVersion"] = "v1"
    return out


# ------------------------------------------------------------------ OpenAPI v3
# kubectl (1.27+) looks in /openapi/v3 to learn whether the server validates fields itself
# (the `fieldValidation` query parameter on PATCH). With that, `kubectl apply --validate=strict`
# (the default) leaves validation to the server instead of downloading full schemas.

_FIELD_VALIDATION = {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True},
                     "description": "Strict, Warn or Ignore"}


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _schema_name(group: str, version: str, kind: str) -> str:
    prefix = "io.k8s.api." + ((group.split(".")[0] if group else "core"))
    return f"{prefix}.{version}.{kind}"


def openapi_v3_group_version(table: ResourceTable, group: str, version: str) -> Dict[str, Any]:
    paths: Dict[str, Any] = {}
    schemas: Dict[str, Any] = {}
    for res in table.in_group_version(group, version):
        gvk = [{"group": group, "version": version, "kind": res.kind}]
        base = "/" + _gv_path(group, version)
        item = f"{base}/namespaces/{{namespace}}/{res.plural}/{{name}}" if res.namespaced else \
            f"{base}/{res.plural}/{{name}}"
        collection = item.rsplit("/", 1)[0]
        name = _schema_name(group, version, res.kind)
        ref = {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}

        def op(action: str, params: List[Dict[str, Any]]) -> Dict[str, Any]:
            return {"operationId": f"{action}{res.kind}", "parameters": params,
                    "responses": {"200": {"description": "OK", **ref}},
                    "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk[0]}

        validation = [_FIELD_VALIDATION, {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                      {"name": "dryRun", "in": "query", "schema": {"type": "string"}}]
        paths[item] = {"get": op("get", []), "put": op("put", validation), "patch": op("patch", validation),
                       "delete": op("delete", [])}
        paths[collection] = {"get": op("list", []), "post": op("post", validation)}
        schemas[name] = {"type": "object", "x-kubernetes-group-version-kind": gvk,
                         "x-kubernetes-preserve-unknown-fields": True,
                         "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                        "metadata": {"type": "object",
                                                     "x-kubernetes-preserve-unknown-fields": True}}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": KUBE_VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": schemas}}


def openapi_v3_root(table: ResourceTable) -> Dict[str, Any]:
    paths = {}
    versions = [("", "v1")] + [(g, v) for g, vs in table.groups() for v in vs]
    for group, version in versions:
        doc = openapi_v3_group_version(table, group, version)
        digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest().upper()[:128]
        path = _gv_path(group, version)
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}
