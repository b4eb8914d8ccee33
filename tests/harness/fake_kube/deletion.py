"""DELETE as the generic registry store does it: preconditions, graceful deletion, finalizers and the
garbage-collection finalizers. The API server never deletes dependents itself.

- `propagationPolicy` (or the deprecated `orphanDependents`), else the kind's default
  (`Background` for nearly everything; `Orphan` for batch/v1 Jobs, with the apiserver's warning):
  - Background: the owner goes at once (when nothing else holds it); the garbage collector of the
    controller manager deletes its dependents afterwards.
  - Foreground: the owner gets `deletionTimestamp` and the `foregroundDeletion` finalizer and stays
    until the garbage collector has deleted its blocking dependents and removed the finalizer.
  - Orphan: the `orphan` finalizer; the garbage collector removes the owner references from the
    dependents, then the finalizer.
- An object with finalizers is only marked (`deletionTimestamp`, `deletionGracePeriodSeconds: 0`);
  it goes when an update removes its last finalizer. No finalizer can be added once it is marked.
- A pod bound to a node is deleted gracefully: marked with `deletionTimestamp` = now + grace
  period, until its kubelet deletes it with grace 0.
- A Namespace is marked Terminating; the namespace controller's part (deleting its content, then
  the Namespace once empty) runs here, synchronously for what has no grace or finalizers.

The split: the API side lives here; the garbage collector (owners gone -> dependents deleted,
`foregroundDeletion` and `orphan` finalizers honoured and removed) is a controller, run by the
simulated controller manager (the kubelet simulator). Without it, dependents stay, as on a
cluster whose kube-controller-manager is down.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from . import preconditions
from .errors import ApiError, invalid, success_status
from .resources import Resource
from .store import clone

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store
    from .resources import ResourceTable

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
POLICIES = ("Foreground", "Background", "Orphan")
JOB_ORPHAN_WARNING = ("child pods are preserved by default when jobs are deleted; set propagationPolicy=Background "
                      "to remove them or set propagationPolicy=Orphan to suppress this warning")


def _now(offset_seconds: float = 0) -> str:
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset_seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def validate_delete_options(options: Dict[str, Any]) -> None:
    policy = options.get("propagationPolicy")
    errors = []
    if policy is not None and policy not in POLICIES:
        errors.append({"reason": "FieldValueNotSupported", "field": "propagationPolicy",
                       "message": f'Unsupported value: "{policy}": supported values: "Foreground", "Background", '
                                  '"Orphan", "nil"'})
    if policy is not None and options.get("orphanDependents") is not None:
        errors.append({"reason": "FieldValueInvalid", "field": "propagationPolicy",
                       "message": f'Invalid value: "{policy}": orphanDependents and deletionPropagation cannot be '
                                  "both set"})
    grace = options.get("gracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
        errors.append({"reason": "FieldValueInvalid", "field": "gracePeriodSeconds",
                       "message": f"Invalid value: {grace!r}: must be an integer"})
    if errors:
        raise invalid("DeleteOptions", "meta.k8s.io", "", errors)


def gc_finalizers(res: Resource, meta: Dict[str, Any], options: Dict[str, Any]) -> List[str]:
    """deletionFinalizersForGarbageCollection: the object's finalizers after this DELETE."""
    finalizers = list(meta.get("finalizers") or [])
    orphan_flag = options.get("orphanDependents")
    policy = options.get("propagationPolicy")
    if orphan_flag is not None:
        orphan, foreground = bool(orphan_flag), False
    elif policy is not None:
        orphan, foreground = policy == "Orphan", policy == "Foreground"
    elif ORPHAN in finalizers or FOREGROUND in finalizers:
        orphan, foreground = ORPHAN in finalizers, FOREGROUND in finalizers and ORPHAN not in finalizers
    else:
        orphan, foreground = res.default_propagation == "Orphan", False
    kept = [f for f in finalizers if f not in (ORPHAN, FOREGROUND)]
    return kept + ([ORPHAN] if orphan else []) + ([FOREGROUND] if foreground else [])


class Deletion:
    """Mixed into Registry: the delete verbs."""

    store: "Store"
    table: "ResourceTable"
    namespaces: Resource

    def delete(self, res: Resource, namespace: Optional[str], name: str, options: Optional[Dict[str, Any]] = None,
               dry_run: bool = False, warnings: Optional[List[str]] = None) -> Dict[str, Any]:
        """The object (still present: graceful deletion or finalizers) or a Success Status (gone)."""
        return self.delete_with_outcome(res, namespace, name, options, dry_run, warnings)[0]

    def delete_with_outcome(self, res: Resource, namespace: Optional[str], name: str,
                            options: Optional[Dict[str, Any]] = None, dry_run: bool = False,
                            warnings: Optional[List[str]] = None) -> Tuple[Dict[str, Any], bool]:
        """(what DELETE answers, whether the object is gone)."""
        options = options or {}
        validate_delete_options(options)
        with self.store.lock:
            live = self.store.get(res, namespace, name)
            preconditions.check_delete(res, live, options)
            if res.default_propagation == "Orphan" and options.get("propagationPolicy") is None and \
                    options.get("orphanDependents") is None and warnings is not None:
                warnings.append(JOB_ORPHAN_WARNING)
            if dry_run:
                return live, False
            if res.kind == "Namespace":
                return self._terminate_namespace(live), False
            meta = live["metadata"]
            finalizers = gc_finalizers(res, meta, options)
            grace = self._grace_period(res, live, options)
            if not finalizers and grace == 0:
                return self._remove(res, live), True
            new = clone(live)
            new_meta = new["metadata"]
            if finalizers:
                new_meta["finalizers"] = finalizers
            else:
                new_meta.pop("finalizers", None)
            current = meta.get("deletionGracePeriodSeconds")
            if not meta.get("deletionTimestamp"):
                new_meta["deletionTimestamp"] = _now(grace)
                new_meta["deletionGracePeriodSeconds"] = grace
            elif current is not None and grace < current:  # a shorter grace period moves the deadline closer
                new_meta["deletionTimestamp"] = _now(grace)
                new_meta["deletionGracePeriodSeconds"] = grace
            if new == live:
                return live, False
            return self.store.update(res, new), False

    @staticmethod
    def _grace_period(res: Resource, live: Dict[str, Any], options: Dict[str, Any]) -> int:
        """Only pods bound to a node and not finished wait for their kubelet; everything else is 0."""
        if res.kind != "Pod":
            return 0
        meta, spec = live["metadata"], live.get("spec") or {}
        if not spec.get("nodeName") or (live.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return 0
        grace = options.get("gracePeriodSeconds")
        if grace is None:
            grace = meta.get("deletionGracePeriodSeconds", spec.get("terminationGracePeriodSeconds", 30))
        grace = int(grace)
        return 1 if grace < 0 else grace  # podStrategy.CheckGracefulDelete: a negative period becomes 1 s

    def _remove(self, res: Resource, obj: Dict[str, Any]) -> Dict[str, Any]:
        meta = obj["metadata"]
        final = self.store.delete(res, meta.get("namespace"), meta["name"])
        namespace = meta.get("namespace")
        if namespace:
            ns_obj = self.store.peek(self.namespaces, None, namespace)
            if ns_obj and ns_obj["metadata"].get("deletionTimestamp"):
                self._finish_namespace(ns_obj)
        if res.return_deleted:
            return final
        return success_status(meta["name"], res.group, res.plural, meta["uid"])

    def _delete_quietly(self, res: Resource, obj: Dict[str, Any]) -> None:
        meta = obj["metadata"]
        try:
            self.delete(res, meta.get("namespace"), meta["name"], {"propagationPolicy": "Background"})
        except ApiError as err:
            if err.code != 404:
                raise

    def _resource_of(self, group: str, plural: str) -> Optional[Resource]:
        for res in self.table.resources:
            if res.group == group and res.plural == plural:
                return res
        return None

    def _terminate_namespace(self, ns_obj: Dict[str, Any]) -> Dict[str, Any]:
        name = ns_obj["metadata"]["name"]
        if not ns_obj["metadata"].get("deletionTimestamp"):
            new = clone(ns_obj)
            new["metadata"]["deletionTimestamp"] = _now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["status"] = {"phase": "Terminating"}
            ns_obj = self.store.update(self.namespaces, new)
        for key, obj in self.store.all_objects():
            res = self._resource_of(key[0], key[1])
            if key[2] == name and res is not None and res.namespaced and not obj["metadata"].get("deletionTimestamp"):
                self._delete_quietly(res, obj)
        current = self.store.peek(self.namespaces, None, name)
        if current is not None:
            self._finish_namespace(current)
        return ns_obj

    def _finish_namespace(self, ns_obj: Dict[str, Any]) -> None:
        name = ns_obj["metadata"]["name"]
        for key in [k for k, _obj in self.store.all_objects()]:
            if key[2] == name and key[1] != "namespaces":
                return
        if self.store.peek(self.namespaces, None, name) is not None:
            self.store.delete(self.namespaces, None, name)

    def delete_collection(self, res: Resource, namespace: Optional[str], label_selector: Optional[str],
                          field_selector: Optional[str], options: Optional[Dict[str, Any]] = None,
                          dry_run: bool = False) -> Dict[str, Any]:
        with self.store.lock:
            items, _rv = self.list(res, namespace, label_selector, field_selector)  # type: ignore[attr-defined]
            deleted = []
            for item in items:
                meta = item["metadata"]
                try:
                    self.delete(res, meta.get("namespace"), meta["name"], options, dry_run)
                    deleted.append(item)
                except ApiError as err:
                    if err.code != 404:
                        raise
            return self.list_object(res, deleted, str(self.store.resource_version))  # type: ignore[attr-defined]
