"""Admission plugins of a k3s API server that the collection's objects meet, in the server's order.

They run after decoding and before the name is generated and the object validated, so their
errors name a pod by its `generateName` (`pods "vllm-7d9f8b7c4-" is forbidden: ...`), exactly
the text a ReplicaSet controller turns into a `FailedCreate` event.

- NamespaceLifecycle: nothing new in a namespace that is being terminated.
- ServiceAccount: a pod's service account must exist.
- RuntimeClass: a pod's `runtimeClassName` must name a RuntimeClass (`pod rejected: RuntimeClass
  "nvidia" not found`); k3s creates the `nvidia` RuntimeClass only when it finds the NVIDIA
  container runtime at start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

from .errors import ApiError
from .resources import Resource

if TYPE_CHECKING:  # pragma: no cover
    from .registry import Registry


def forbidden(res: Resource, name: str, why: str) -> ApiError:
    """admission.NewForbidden: `<resource> "<name>" is forbidden: <why>`."""
    qualified = f"{res.plural}.{res.group}" if res.group else res.plural
    return ApiError(403, f'{qualified} "{name}" is forbidden: {why}', reason="Forbidden", name=name,
                    group=res.group, kind=res.plural)


def namespace_lifecycle(registry: "Registry", res: Resource, namespace: Optional[str], meta: Dict[str, Any]) -> None:
    if not res.namespaced or not namespace:
        return
    ns_obj = registry.store.peek(registry.namespaces, None, namespace)
    if ns_obj and (ns_obj.get("metadata") or {}).get("deletionTimestamp"):
        raise forbidden(res, meta.get("name") or meta.get("generateName", ""),
                        f"unable to create new content in namespace {namespace} because it is being terminated")


def admit_create(registry: "Registry", res: Resource, obj: Dict[str, Any]) -> None:
    if res.kind != "Pod":
        return
    meta = obj["metadata"]
    name = meta.get("name") or meta.get("generateName", "")
    spec = obj.get("spec") or {}
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    accounts = registry.table.lookup("", "v1", "serviceaccounts")
    if registry.store.peek(accounts, meta.get("namespace"), account) is None:
        raise forbidden(res, name, f'error looking up service account {meta.get("namespace")}/{account}: '
                                   f'serviceaccount "{account}" not found')
    runtime_class = spec.get("runtimeClassName")
    if runtime_class:
        classes = registry.table.lookup("node.k8s.io", "v1", "runtimeclasses")
        found = registry.store.peek(classes, None, runtime_class)
        if found is None or (found.get("metadata") or {}).get("deletionTimestamp"):
            raise forbidden(res, name, f'pod rejected: RuntimeClass "{runtime_class}" not found')
