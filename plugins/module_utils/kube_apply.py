# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Server-side apply, diff and prune of Kubernetes objects (``baremetal.gpu.vllm_deploy``).

* Server-side apply with field manager ``baremetal-gpu``; an object is *changed* only when the server's
  object changed (before and after compared, ignoring status and bookkeeping metadata), never merely
  because it was sent. Check mode applies with ``dryRun=All``.
* Prune deletes objects carrying the collection's managed-by label that are no longer wanted.
* Secret values never leave: ``masked`` for diffs, ``secret_values`` for AnsibleModule.no_log_values.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import copy
import json
import time

from ansible_collections.baremetal.gpu.plugins.module_utils.kube_client import KubeError, ref

FIELD_MANAGER = "baremetal-gpu"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_SELECTOR = MANAGED_BY_LABEL + "=" + FIELD_MANAGER

# Kinds prune may delete by default: not Namespaces (everything in them would go) nor
# PersistentVolumeClaims (the weights cache would go); pass them explicitly to prune them too.
PRUNE_KINDS = (
    ("apps/v1", "Deployment"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("policy/v1", "PodDisruptionBudget"),
)

# Apply order when the manifests do not say: what others depend on first.
_KIND_ORDER = ("Namespace", "CustomResourceDefinition", "ServiceAccount", "Secret", "ConfigMap",
               "PersistentVolumeClaim", "Service")

# Metadata the server maintains; ignored when deciding whether an object changed.
_VOLATILE_METADATA = ("resourceVersion", "managedFields", "generation", "creationTimestamp", "uid",
                      "selfLink")


def comparable(obj):
    """The object as its owner sees it: no status, no server bookkeeping."""
    if obj is None:
        return None
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata") or {}
    for key in _VOLATILE_METADATA:
        meta.pop(key, None)
    annotations = meta.get("annotations") or {}
    annotations.pop("deployment.kubernetes.io/revision", None)
    if not annotations:
        meta.pop("annotations", None)
    return out


def object_changed(before, after):
    """Whether applying turned ``before`` (None: absent) into a different ``after``."""
    if before is None:
        return after is not None
    if after is None:
        return True
    # Content, not resourceVersion: a dry run answers with the old resourceVersion, and a status update
    # by a controller between the list and the apply bumps it without any change of ours.
    return comparable(before) != comparable(after)


def masked(obj):
    """A copy safe to print: Secret values replaced (keys kept, so a diff still shows which changed)."""
    if obj is None or obj.get("kind") != "Secret":
        return obj
    out = copy.deepcopy(obj)
    for field in ("data", "stringData"):
        if isinstance(out.get(field), dict):
            out[field] = dict((k, "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER") for k in out[field])
    annotations = (out.get("metadata") or {}).get("annotations") or {}
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    return out


def secret_values(manifests):
    """Every secret value (raw and base64) in ``manifests``, for AnsibleModule.no_log_values."""
    values = set()
    for obj in manifests or []:
        if not isinstance(obj, dict) or obj.get("kind") != "Secret":
            continue
        for value in (obj.get("data") or {}).values():
            if value:
                values.add(str(value))
                try:
                    values.add(base64.b64decode(value).decode("utf-8"))
                except (ValueError, UnicodeDecodeError):
                    pass
        for value in (obj.get("stringData") or {}).values():
            if value:
                values.add(str(value))
                values.add(base64.b64encode(str(value).encode("utf-8")).decode("ascii"))
    return sorted(v for v in values if len(v) >= 3)


def apply_order(manifests):
    """Stable order: Namespaces and what others depend on first, the rest as given."""
    def rank(item):
        index, obj = item
        kind = obj.get("kind")
        return (_KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER), index)
    return [item[1] for item in sorted(enumerate(manifests), key=rank)]


def _key(obj):
    meta = obj.get("metadata") or {}
    return (obj.get("apiVersion"), obj.get("kind"), meta.get("namespace") or "", meta.get("name"))


def validate_manifests(kube, manifests, default_namespace):
    """Check every manifest names apiVersion, kind, metadata.name; fill namespaces. Returns copies."""
    out = []
    seen = set()
    for index, obj in enumerate(manifests):
        if not isinstance(obj, dict):
            raise KubeError(0, "manifests[%d] is not a mapping" % index)
        missing = [k for k in ("apiVersion", "kind") if not obj.get(k)]
        if not (obj.get("metadata") or {}).get("name"):
            missing.append("metadata.name")
        if missing:
            raise KubeError(0, "manifests[%d] has no %s" % (index, ", ".join(missing)))
        obj = copy.deepcopy(obj)
        if kube.namespaced(obj["apiVersion"], obj["kind"]):
            obj["metadata"].setdefault("namespace", default_namespace)
        else:
            obj["metadata"].pop("namespace", None)
        if _key(obj) in seen:
            raise KubeError(0, "%s is listed twice" % ref(obj))
        seen.add(_key(obj))
        out.append(obj)
    return out


# A manifest that leaves spec.replicas to another field manager (the GPU mode switcher) names it here.
REPLICAS_MANAGER_ANNOTATION = "baremetal.gpu/replicas-manager"


def owns_replicas(obj, manager):
    """Whether field manager ``manager`` owns ``spec.replicas`` of the live object ``obj``."""
    for entry in (obj or {}).get("metadata", {}).get("managedFields") or []:
        if entry.get("manager") == manager and "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {}):
            return True
    return False


def hand_over_replicas(kube, obj, live, check_mode=False):
    """Before applying ``obj`` without ``spec.replicas``, make sure the manager its annotation names owns them,
    so this apply neither sets nor (by leaving them out) resets them: a new object is created with 0 replicas
    by that manager; a live one whose replicas it does not own yet (an older apply owned them) gets them
    handed over at their live value. Returns True when it sent something."""
    manager = ((obj.get("metadata") or {}).get("annotations") or {}).get(REPLICAS_MANAGER_ANNOTATION)
    if not manager or "replicas" in (obj.get("spec") or {}):
        return False
    if live is None:
        first = copy.deepcopy(obj)
        first["spec"]["replicas"] = 0
        kube.apply(first, field_manager=manager, force=True, dry_run=check_mode)
        return True
    if owns_replicas(live, manager):
        return False
    meta = obj["metadata"]
    partial = {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
               "metadata": {"name": meta["name"], "namespace": meta.get("namespace"),
                            "resourceVersion": live["metadata"]["resourceVersion"]},
               "spec": {"replicas": int((live.get("spec") or {}).get("replicas") or 0)}}
    kube.apply(partial, field_manager=manager, force=True, dry_run=check_mode)
    return True


def _yaml_text(obj):
    return json.dumps(obj, indent=2, sort_keys=True) + "\n" if obj is not None else ""


def apply_all(kube, manifests, field_manager=FIELD_MANAGER, force=True, check_mode=False, want_diff=False,
              default_namespace="default", clock=time.monotonic):
    """Server-side apply every manifest; returns per-object results and the applied objects."""
    manifests = apply_order(validate_manifests(kube, manifests, default_namespace))
    live = {}
    listed = set()
    # One list per kind and namespace gives every "before" (and the namespaces that do not exist yet).
    for obj in manifests:
        group = (obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace") or "")
        if group in listed:
            continue
        listed.add(group)
        try:
            items = kube.items(group[0], group[1], group[2] or None)
        except KubeError as exc:
            if exc.status != 404:  # some servers answer 404 for a list in a missing namespace
                raise
            items = []
        for item in items:
            live[_key(item)] = item
    new_namespaces = set(obj["metadata"]["name"] for obj in manifests
                         if obj["kind"] == "Namespace" and _key(obj) not in live)
    results = []
    applied = []
    for obj in manifests:
        started = clock()
        before = live.get(_key(obj))
        namespace = obj["metadata"].get("namespace")
        if check_mode and namespace and namespace in new_namespaces:
            after = obj  # the namespace does not exist yet: the server cannot dry-run into it
        else:
            hand_over_replicas(kube, obj, before, check_mode)
            after = kube.apply(obj, field_manager=field_manager, force=force, dry_run=check_mode)
        changed = object_changed(before, after)
        result = {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "namespace": namespace or None,
            "name": obj["metadata"]["name"],
            "action": "created" if before is None else ("configured" if changed else "unchanged"),
            "changed": changed,
            "seconds": round(clock() - started, 4),
        }
        if isinstance(after, dict):
            result["resource_version"] = (after.get("metadata") or {}).get("resourceVersion")
            result["generation"] = (after.get("metadata") or {}).get("generation")
        if want_diff and changed:
            result["diff"] = {"before": _yaml_text(masked(comparable(before))),
                              "after": _yaml_text(masked(comparable(after))),
                              "before_header": ref(obj) + " (live)", "after_header": ref(obj) + " (applied)"}
        results.append(result)
        applied.append(after)
    return results, applied


def prune(kube, manifests, namespaces, kinds=PRUNE_KINDS, selector=MANAGED_BY_SELECTOR, check_mode=False,
          default_namespace="default"):
    """Delete objects matching ``selector`` in ``namespaces`` (kinds ``kinds``) that are not in ``manifests``."""
    wanted = set()
    for obj in manifests:
        meta = obj.get("metadata") or {}
        wanted.add((obj.get("kind"), meta.get("namespace") or default_namespace, meta.get("name")))
    pruned = []
    for api_version, kind in kinds:
        try:
            namespaced = kube.namespaced(api_version, kind)
        except KubeError:
            continue  # the server does not serve this kind: nothing of it to prune
        for namespace in (sorted(namespaces) if namespaced else [None]):
            try:
                items = kube.items(api_version, kind, namespace, label_selector=selector)
            except KubeError as exc:
                if exc.status == 404:  # the namespace does not exist (yet): nothing to prune there
                    continue
                raise
            for item in items:
                meta = item.get("metadata") or {}
                if meta.get("deletionTimestamp") or meta.get("ownerReferences"):
                    continue
                if (kind, meta.get("namespace") or default_namespace, meta.get("name")) in wanted:
                    continue
                kube.delete(api_version, kind, meta["name"], meta.get("namespace"), dry_run=check_mode)
                pruned.append({"apiVersion": api_version, "kind": kind, "namespace": meta.get("namespace"),
                               "name": meta["name"], "action": "pruned", "changed": True})
    return pruned
