"""The verbs: create, get, list, replace, patch (4 types), delete, deletecollection and the
scale/status/binding/eviction subresources, over the store.

This is the apiserver's "registry" layer: it applies a kind's strategy (defaults, validation,
status handling, generation), field ownership and garbage collection, independent of HTTP.
Every method takes plain data and returns plain data or raises ApiError; the HTTP layer in
`server.py` only parses requests and serialises results. Tests may call it in-process too.
"""

from __future__ import annotations

import datetime
import json
import random
import uuid
from typing import Any, Dict, List, Optional, Tuple

import yaml

from . import defaults, managed
from .errors import ApiError, already_exists, conflict, invalid, not_found, success_status
from .fields import SCHEMAS
from .patch import json_patch, merge_patch, strategic_merge_patch
from .resources import Resource, ResourceTable
from .selectors import fields_match, labels_match, parse_field_selector, parse_label_selector, selector_to_string
from .store import Store, clone

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
PATCH_TYPES = (APPLY, MERGE, STRATEGIC, JSON_PATCH)

FAKE_CA = "-----BEGIN CERTIFICATE-----\nZmFrZS1rdWJlLWNh\n-----END CERTIFICATE-----\n"


def utc_now(offset_seconds: float = 0) -> str:
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset_seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def manager_from_user_agent(user_agent: Optional[str]) -> str:
    """apiserver's default field manager: the User-Agent up to its first '/'."""
    return (user_agent or "unknown").split("/", 1)[0][:128] or "unknown"


def _spec_part(obj: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _without_rv(obj: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(obj)
    out["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"}
    return out


class Registry:
    def __init__(self, store: Store, table: ResourceTable) -> None:
        self.store = store
        self.table = table
        self._next_ip = 10
        self._next_node_port = 30000
        self.ctx = defaults.Context(utc_now, self._allocate_ip, self._allocate_node_port)
        self.namespaces = table.lookup("", "v1", "namespaces")

    # ------------------------------------------------------------ allocators
    def _allocate_ip(self) -> str:
        self._next_ip += 1
        return f"10.43.{self._next_ip // 250}.{self._next_ip % 250 + 1}"

    def _allocate_node_port(self) -> int:
        self._next_node_port += 1
        return self._next_node_port

    # ------------------------------------------------------------ bootstrap
    def bootstrap(self) -> None:
        """What a fresh k3s cluster has before anyone touches it."""
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create(self.namespaces, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                        "k3s")
        service = self.table.lookup("", "v1", "services")
        self.create(service, "default", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": "10.43.0.1", "ports": [{"name": "https", "port": 443, "targetPort": 6443}]},
        }, "k3s")

    # ------------------------------------------------------------ reads
    def check_namespace(self, res: Resource, namespace: Optional[str]) -> None:
        if res.namespaced and namespace is not None and self.store.peek(self.namespaces, None, namespace) is None:
            raise not_found("namespaces", "", namespace)

    def get(self, res: Resource, namespace: Optional[str], name: str) -> Dict[str, Any]:
        return self.store.get(res, namespace, name)

    def list(self, res: Resource, namespace: Optional[str] = None, label_selector: Optional[str] = None,
             field_selector: Optional[str] = None) -> Tuple[List[Dict[str, Any]], str]:
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector)
        with self.store.lock:
            items = [clone(o) for o in self.store.items(res, namespace)
                     if labels_match(labels, (o.get("metadata") or {}).get("labels")) and fields_match(fields, o)]
            return items, str(self.store.resource_version)

    def list_object(self, res: Resource, items: List[Dict[str, Any]], rv: str,
                    continue_token: Optional[str] = None) -> Dict[str, Any]:
        for item in items:
            item.setdefault("apiVersion", res.api_version)
            item.setdefault("kind", res.kind)
        meta: Dict[str, Any] = {"resourceVersion": rv}
        if continue_token:
            meta["continue"] = continue_token
        return {"kind": res.list_kind, "apiVersion": res.api_version, "metadata": meta, "items": items}

    # ------------------------------------------------------------ unknown fields
    @staticmethod
    def _check_fields(res: Resource, obj: Dict[str, Any], validation: str, warnings: Optional[List[str]],
                      apply: bool = False) -> None:
        """Drop undeclared fields (as decoding does); Strict fails on them, Warn reports them."""
        unknown = SCHEMAS.unknown_fields(obj, prune=True)
        if not unknown or validation == "Ignore":
            return
        if validation == "Strict":
            if apply:
                raise ApiError(400, "; ".join(f".{path}: field not declared in schema" for path in unknown))
            raise ApiError(400, f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: strict '
                                "decoding error: " + ", ".join(f'unknown field "{path}"' for path in unknown))
        if warnings is not None:
            warnings.extend(f'unknown field "{path}"' for path in unknown)

    # ------------------------------------------------------------ create
    def _prepare_body(self, res: Resource, namespace: Optional[str], body: Any,
                      url_name: Optional[str] = None) -> Dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "the body of the request was in an unknown format - accepted media types include: "
                                "application/json, application/yaml")
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if api_version and api_version != res.api_version:
            raise ApiError(400, f"the API version in the data ({api_version}) does not match the expected API "
                                f"version ({res.api_version})")
        if kind and kind != res.kind:
            raise ApiError(400, f"the kind in the data ({kind}) does not match the expected kind ({res.kind})")
        body["apiVersion"], body["kind"] = res.api_version, res.kind
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "metadata must be an object")
        if res.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise ApiError(400, "the namespace of the provided object does not match the namespace sent on "
                                    "the request")
            if namespace:
                meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if url_name is not None:
            if meta.get("name") and meta["name"] != url_name:
                raise ApiError(400, f"the name of the object ({meta['name']}) does not match the name on the URL "
                                    f"({url_name})")
            meta["name"] = url_name
        return body

    def create(self, res: Resource, namespace: Optional[str], body: Any, manager: str,
               dry_run: bool = False, managed_already: bool = False, validation: str = "Warn",
               warnings: Optional[List[str]] = None) -> Dict[str, Any]:
        with self.store.lock:
            body = self._prepare_body(res, namespace, clone(body))
            self._check_fields(res, body, validation, warnings)
            meta = body["metadata"]
            self.check_namespace(res, namespace)
            if res.namespaced and namespace:
                ns_obj = self.store.peek(self.namespaces, None, namespace)
                if ns_obj and (ns_obj.get("metadata") or {}).get("deletionTimestamp"):
                    raise ApiError(403, f'{res.plural} "{meta.get("name", "")}" is forbidden: unable to create new '
                                        f"content in namespace {namespace} because it is being terminated",
                                   name=meta.get("name", ""), group=res.group, kind=res.plural)
            if res.kind == "Pod":  # admission runs before the name is generated, like the real server
                self._admit_service_account(body)
            if not meta.get("name") and meta.get("generateName"):
                alphabet = "bcdfghjklmnpqrstvwxz2456789"
                for _attempt in range(10):
                    meta["name"] = meta["generateName"] + "".join(random.choice(alphabet) for _char in range(5))
                    if self.store.peek(res, namespace, meta["name"]) is None:
                        break
            for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
                meta.pop(key, None)
            if not managed_already:
                meta.pop("managedFields", None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = utc_now()
            if res.generation:
                meta["generation"] = 1
            else:
                meta.pop("generation", None)
            initial = defaults.initial_status(res.kind, body)
            if initial is not None:
                if res.has_status:
                    body["status"] = initial
                else:
                    body.pop("status", None)
            defaults.default(res.kind, body, self.ctx)
            errors = defaults.validate(res.kind, body)
            if errors:
                raise invalid(res.kind, res.group, meta.get("name") or meta.get("generateName", ""), errors)
            if not managed_already:
                managed.track_update(None, body, manager, res.api_version, utc_now())
            if dry_run:
                if self.store.peek(res, namespace, meta["name"]) is not None:
                    raise already_exists(res.plural, res.group, meta["name"])
                return body
            created = self.store.create(res, body)
            if res.kind == "Namespace":
                self._populate_namespace(meta["name"])
            return created

    def _admit_service_account(self, pod: Dict[str, Any]) -> None:
        """The ServiceAccount admission plugin: a pod may only use an existing service account."""
        meta = pod["metadata"]
        spec = pod.get("spec") or {}
        account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        sa = self.table.lookup("", "v1", "serviceaccounts")
        if self.store.peek(sa, meta.get("namespace"), account) is None:
            name = meta.get("name") or meta.get("generateName", "")
            raise ApiError(403, f'pods "{name}" is forbidden: error looking up service account '
                                f'{meta.get("namespace")}/{account}: serviceaccount "{account}" not found',
                           reason="Forbidden", name=name, kind="pods")

    def _populate_namespace(self, namespace: str) -> None:
        """The controllers of a real cluster add these to every new namespace."""
        sa = self.table.lookup("", "v1", "serviceaccounts")
        cm = self.table.lookup("", "v1", "configmaps")
        self.create(sa, namespace, {"metadata": {"name": "default"}}, "kube-controller-manager")
        self.create(cm, namespace, {"metadata": {"name": "kube-root-ca.crt",
                                                 "annotations": {"kubernetes.io/description": (
                                                     "Contains a CA bundle that can be used to verify the "
                                                     "kube-apiserver when using internal endpoints such as the "
                                                     "internal service IP or kubernetes.default.svc. No other "
                                                     "usage is guaranteed across distributions of Kubernetes "
                                                     "clusters.")}},
                                    "data": {"ca.crt": FAKE_CA}}, "kube-controller-manager")

    # ------------------------------------------------------------ update
    def _write(self, res: Resource, old: Dict[str, Any], new: Dict[str, Any], manager: str,
               subresource: str = "", managed_already: bool = False, dry_run: bool = False) -> Dict[str, Any]:
        """Store `new` (a fresh copy the caller hands over) as the next state of `old` (a snapshot
        that is only read), following the kind's update strategy."""
        new["apiVersion"], new["kind"] = res.api_version, res.kind
        meta = new.setdefault("metadata", {})
        old_meta = old["metadata"]
        for key in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                    "deletionGracePeriodSeconds", "generateName"):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        if subresource == "status":
            status, fields = new.get("status"), meta.get("managedFields")
            new = clone(old)
            if managed_already and fields:
                new["metadata"]["managedFields"] = fields
            elif managed_already:
                new["metadata"].pop("managedFields", None)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif res.has_status:
            if "status" in old:
                new["status"] = clone(old["status"])
            else:
                new.pop("status", None)
        if subresource != "status":
            defaults.keep_allocated(res.kind, new, old)
            defaults.default(res.kind, new, self.ctx)
            errors = defaults.validate(res.kind, new, old)
            if errors:
                raise invalid(res.kind, res.group, meta["name"], errors)
        if res.generation:
            generation = int(old_meta.get("generation", 1))
            if _spec_part(new) != _spec_part(old):
                generation += 1
            new["metadata"]["generation"] = generation
        else:
            new["metadata"].pop("generation", None)
        if not managed_already:
            if old_meta.get("managedFields") is None:
                new["metadata"].pop("managedFields", None)
            else:
                new["metadata"]["managedFields"] = old_meta["managedFields"]
            managed.track_update(old, new, manager, res.api_version, utc_now(), subresource)
        if _without_rv(new) == _without_rv(old):
            return clone(old)  # nothing changed: no write, resourceVersion stays
        if dry_run:
            return new
        new["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
        stored = self.store.update(res, new, expect_rv=old_meta["resourceVersion"])
        if stored["metadata"].get("deletionTimestamp") and not stored["metadata"].get("finalizers"):
            if not (res.kind == "Pod" and stored["metadata"].get("deletionGracePeriodSeconds")):
                return self._remove(res, stored)
        return stored

    def replace(self, res: Resource, namespace: Optional[str], name: str, body: Any, manager: str,
                subresource: str = "", dry_run: bool = False, validation: str = "Warn",
                warnings: Optional[List[str]] = None) -> Dict[str, Any]:
        with self.store.lock:
            body = self._prepare_body(res, namespace, clone(body), url_name=name)
            self._check_fields(res, body, validation, warnings)
            old = self.store.get(res, namespace, name)
            wanted_rv = body["metadata"].get("resourceVersion")
            if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
                raise conflict(res.plural, res.group, name, "the object has been modified; please apply your "
                                                            "changes to the latest version and try again")
            return self._write(res, old, body, manager, subresource, dry_run=dry_run)

    def patch(self, res: Resource, namespace: Optional[str], name: str, content_type: str, raw: bytes,
              manager: Optional[str], force: bool = False, subresource: str = "",
              dry_run: bool = False, validation: str = "Warn",
              warnings: Optional[List[str]] = None) -> Tuple[Dict[str, Any], bool]:
        """Returns (object, created). Only server-side apply can create."""
        if content_type not in PATCH_TYPES:
            raise ApiError(415, f"the body of the request was in an unknown format - accepted media types "
                                f"include: {', '.join(PATCH_TYPES)}")
        with self.store.lock:
            if content_type == APPLY:
                return self._apply(res, namespace, name, raw, manager, force, subresource, dry_run, validation,
                                   warnings)
            try:
                data = json.loads(raw or b"null")
            except ValueError as err:
                raise ApiError(400, f"error decoding patch: {err}")
            old = self.store.peek(res, namespace, name)  # read-only snapshot: patches copy it
            if old is None:
                raise not_found(res.plural, res.group, name)
            if content_type == MERGE:
                patched = merge_patch(old, data)
            elif content_type == STRATEGIC:
                patched = strategic_merge_patch(old, data)
            else:
                patched = json_patch(old, data)
            if not isinstance(patched, dict):
                raise ApiError(422, "patch did not produce an object", reason="Invalid")
            patched["apiVersion"], patched["kind"] = res.api_version, res.kind
            self._check_fields(res, patched, validation, warnings)
            wanted_rv = (patched.get("metadata") or {}).get("resourceVersion")
            if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
                raise conflict(res.plural, res.group, name, "the object has been modified; please apply your "
                                                            "changes to the latest version and try again")
            if (patched.get("metadata") or {}).get("name", name) != name:
                raise ApiError(400, f"the name of the object ({patched['metadata']['name']}) does not match the "
                                    f"name on the URL ({name})")
            return self._write(res, old, patched, manager or "unknown", subresource, dry_run=dry_run), False

    def _apply(self, res: Resource, namespace: Optional[str], name: str, raw: bytes, manager: Optional[str],
               force: bool, subresource: str, dry_run: bool, validation: str = "Warn",
               warnings: Optional[List[str]] = None) -> Tuple[Dict[str, Any], bool]:
        if not manager:
            raise ApiError(422, 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required '
                                "for apply patch", reason="Invalid", kind="PatchOptions", group="meta.k8s.io",
                           causes=[{"reason": "FieldValueRequired", "message": "Required value: is required for "
                                    "apply patch", "field": "fieldManager"}])
        try:
            applied = yaml.safe_load(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ApiError(400, f"error decoding YAML: {err}")
        if not isinstance(applied, dict):
            raise ApiError(400, "error decoding YAML: the apply configuration must be an object")
        if not applied.get("apiVersion") or not applied.get("kind"):
            raise ApiError(400, f"Object 'Kind' is missing in '{json.dumps(applied)}'")
        applied = self._prepare_body(res, namespace, applied, url_name=name)
        self._check_fields(res, applied, validation, warnings, apply=True)
        live = self.store.peek(res, namespace, name)
        now = utc_now()
        if live is None:
            if subresource:
                raise not_found(res.plural, res.group, name)
            self.check_namespace(res, namespace)
            merged = managed.apply(None, applied, manager, force, res.api_version, now, res.plural, res.group)
            return self.create(res, namespace, merged, manager, dry_run=dry_run, managed_already=True), True
        merged = managed.apply(live, applied, manager, force, res.api_version, now, res.plural, res.group,
                               subresource)
        return self._write(res, live, merged, manager, subresource, managed_already=True, dry_run=dry_run), False

    # ------------------------------------------------------------ scale
    def get_scale(self, res: Resource, namespace: Optional[str], name: str) -> Dict[str, Any]:
        if res.scale is None:
            raise not_found(res.plural + "/scale", res.group, name)
        obj = self.store.get(res, namespace, name)
        meta = obj["metadata"]
        return {
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in meta},
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                       "selector": selector_to_string((obj.get("spec") or {}).get("selector"))},
        }

    def update_scale(self, res: Resource, namespace: Optional[str], name: str, scale: Any, manager: str,
                     dry_run: bool = False) -> Dict[str, Any]:
        with self.store.lock:
            current = self.get_scale(res, namespace, name)
            if not isinstance(scale, dict):
                raise ApiError(400, "the body of the request was in an unknown format")
            wanted_rv = (scale.get("metadata") or {}).get("resourceVersion")
            if wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
                raise conflict(res.plural, res.group, name, "the object has been modified; please apply your "
                                                            "changes to the latest version and try again")
            replicas = (scale.get("spec") or {}).get("replicas", 0)
            if not isinstance(replicas, int) or replicas < 0:
                raise invalid("Scale", "autoscaling", name, [{"reason": "FieldValueInvalid", "field": "spec.replicas",
                                                             "message": f"Invalid value: {replicas}: must be greater "
                                                                        "than or equal to 0"}])
            old = self.store.get(res, namespace, name)
            new = clone(old)
            new.setdefault("spec", {})["replicas"] = replicas
            self._write(res, old, new, manager, "scale", dry_run=dry_run)
            return self.get_scale(res, namespace, name)

    def patch_scale(self, res: Resource, namespace: Optional[str], name: str, content_type: str, raw: bytes,
                    manager: Optional[str], dry_run: bool = False) -> Dict[str, Any]:
        with self.store.lock:
            current = self.get_scale(res, namespace, name)
            if content_type == APPLY:
                data = yaml.safe_load(raw.decode("utf-8"))
                patched = merge_patch(current, {"spec": (data or {}).get("spec", {})})
            else:
                if content_type not in PATCH_TYPES:
                    raise ApiError(415, "the body of the request was in an unknown format")
                try:
                    data = json.loads(raw or b"null")
                except ValueError as err:
                    raise ApiError(400, f"error decoding patch: {err}")
                patched = {MERGE: merge_patch, STRATEGIC: strategic_merge_patch,
                           JSON_PATCH: json_patch}[content_type](current, data)
            return self.update_scale(res, namespace, name, patched, manager or "unknown", dry_run)

    # ------------------------------------------------------------ pods: binding, eviction
    def bind(self, namespace: str, name: str, binding: Dict[str, Any], manager: str) -> Dict[str, Any]:
        pods = self.table.lookup("", "v1", "pods")
        with self.store.lock:
            old = self.store.get(pods, namespace, name)
            node = ((binding or {}).get("target") or {}).get("name")
            if not node:
                raise invalid("Binding", "", name, [{"reason": "FieldValueRequired", "field": "target.name",
                                                     "message": "Required value"}])
            current = (old.get("spec") or {}).get("nodeName")
            if current:
                raise conflict("pods/binding", "", name, f'pod {name} is already assigned to node "{current}"')
            new = clone(old)
            new["spec"]["nodeName"] = node
            # like the real binding REST handler, binding also marks the pod scheduled
            conditions = [c for c in (new.get("status") or {}).get("conditions") or []
                          if c.get("type") != "PodScheduled"]
            conditions.insert(0, {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                                  "lastTransitionTime": utc_now()})
            new.setdefault("status", {})["conditions"] = conditions
            bound = self._write(pods, old, new, manager, "binding")
            with_status = clone(bound)
            with_status["status"] = new["status"]
            self._write(pods, bound, with_status, manager, "status")
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    # ------------------------------------------------------------ delete and garbage collection
    def dependents(self, uid: str) -> List[Tuple[Resource, Dict[str, Any]]]:
        found = []
        for key, obj in self.store.all_objects():
            for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
                if ref.get("uid") == uid:
                    res = self.table.lookup(key[0], self._version_of(key[0], key[1]), key[1])
                    found.append((res, obj))
        return found

    def _version_of(self, group: str, plural: str) -> str:
        for res in self.table.resources:
            if res.group == group and res.plural == plural:
                return res.version
        return "v1"

    def delete(self, res: Resource, namespace: Optional[str], name: str, options: Optional[Dict[str, Any]] = None,
               dry_run: bool = False) -> Dict[str, Any]:
        """Returns the object (still present: graceful or finalizers) or a Success Status (gone)."""
        options = options or {}
        with self.store.lock:
            live = self.store.get(res, namespace, name)
            meta = live["metadata"]
            pre = options.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != meta.get("uid"):
                raise conflict(res.plural, res.group, name, f"Precondition failed: UID in precondition: "
                                                            f"{pre['uid']}, UID in object meta: {meta.get('uid')}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
                raise conflict(res.plural, res.group, name, "Precondition failed: ResourceVersion in precondition: "
                                                            f"{pre['resourceVersion']}, ResourceVersion in object "
                                                            f"meta: {meta.get('resourceVersion')}")
            if dry_run:
                return live
            policy = options.get("propagationPolicy")
            if not policy:
                policy = "Orphan" if options.get("orphanDependents") else "Background"
            if res.kind == "Namespace":
                return self._terminate_namespace(live)
            grace = options.get("gracePeriodSeconds")
            if res.kind == "Pod":
                return self._delete_pod(res, live, grace)
            if meta.get("deletionTimestamp"):
                return live
            if policy == "Orphan":
                self._orphan(meta["uid"])
            if policy == "Foreground" and self.dependents(meta["uid"]):
                new = clone(live)
                new["metadata"]["deletionTimestamp"] = utc_now()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                new["metadata"].setdefault("finalizers", []).append("foregroundDeletion")
                stored = self.store.update(res, new)
                for dep_res, dep in self.dependents(meta["uid"]):
                    self._delete_quietly(dep_res, dep)
                current = self.store.peek(res, namespace, name)
                if current is not None:
                    return self._finish_foreground(res, current) or self.store.get(res, namespace, name)
                return stored
            if meta.get("finalizers"):
                new = clone(live)
                new["metadata"]["deletionTimestamp"] = utc_now()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                return self.store.update(res, new)
            return self._remove(res, live, cascade=(policy != "Orphan"))

    def _delete_pod(self, res: Resource, live: Dict[str, Any], grace: Optional[int]) -> Dict[str, Any]:
        meta = live["metadata"]
        spec = live.get("spec") or {}
        phase = (live.get("status") or {}).get("phase")
        if grace is None:
            grace = meta.get("deletionGracePeriodSeconds", spec.get("terminationGracePeriodSeconds", 30))
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            grace = 0
        current = meta.get("deletionGracePeriodSeconds")
        if grace > 0 or meta.get("finalizers"):
            if current is not None and current <= grace and meta.get("deletionTimestamp"):
                return live
            new = clone(live)
            new["metadata"]["deletionTimestamp"] = utc_now(grace)
            new["metadata"]["deletionGracePeriodSeconds"] = grace
            stored = self.store.update(res, new)
            if grace == 0 and not meta.get("finalizers"):
                return self._remove(res, stored)
            return stored
        return self._remove(res, live)

    def _remove(self, res: Resource, obj: Dict[str, Any], cascade: bool = True) -> Dict[str, Any]:
        meta = obj["metadata"]
        final = self.store.delete(res, meta.get("namespace"), meta["name"])
        if cascade:
            for dep_res, dep in self.dependents(meta["uid"]):
                self._delete_quietly(dep_res, dep)
        self._after_removal(obj)
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

    def _orphan(self, uid: str) -> None:
        for dep_res, dep in self.dependents(uid):
            new = clone(dep)
            refs = [r for r in new["metadata"].get("ownerReferences", []) if r.get("uid") != uid]
            if refs:
                new["metadata"]["ownerReferences"] = refs
            else:
                new["metadata"].pop("ownerReferences", None)
            self.store.update(dep_res, new)

    def _after_removal(self, obj: Dict[str, Any]) -> None:
        """Finish owners waiting in foreground deletion, and namespaces waiting to be empty."""
        meta = obj["metadata"]
        for ref in meta.get("ownerReferences") or []:
            owner = self._find_uid(ref.get("uid"))
            if owner:
                self._finish_foreground(*owner)
        namespace = meta.get("namespace")
        if namespace:
            ns_obj = self.store.peek(self.namespaces, None, namespace)
            if ns_obj and ns_obj["metadata"].get("deletionTimestamp"):
                self._finish_namespace(ns_obj)

    def _find_uid(self, uid: Optional[str]) -> Optional[Tuple[Resource, Dict[str, Any]]]:
        for key, obj in self.store.all_objects():
            if obj["metadata"].get("uid") == uid:
                return self.table.lookup(key[0], self._version_of(key[0], key[1]), key[1]), obj
        return None

    def _finish_foreground(self, res: Resource, owner: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        finalizers = owner["metadata"].get("finalizers") or []
        if "foregroundDeletion" not in finalizers or self.dependents(owner["metadata"]["uid"]):
            return None
        new = clone(owner)
        rest = [f for f in finalizers if f != "foregroundDeletion"]
        if rest:
            new["metadata"]["finalizers"] = rest
            return self.store.update(res, new)
        new["metadata"].pop("finalizers", None)
        return self._remove(res, self.store.update(res, new))

    def _terminate_namespace(self, ns_obj: Dict[str, Any]) -> Dict[str, Any]:
        name = ns_obj["metadata"]["name"]
        if not ns_obj["metadata"].get("deletionTimestamp"):
            new = clone(ns_obj)
            new["metadata"]["deletionTimestamp"] = utc_now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["status"] = {"phase": "Terminating"}
            ns_obj = self.store.update(self.namespaces, new)
        for key, obj in self.store.all_objects():
            if key[2] == name and self.table.lookup(key[0], self._version_of(key[0], key[1]), key[1]).namespaced:
                res = self.table.lookup(key[0], self._version_of(key[0], key[1]), key[1])
                if not obj["metadata"].get("deletionTimestamp"):
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
            items, rv = self.list(res, namespace, label_selector, field_selector)
            deleted = []
            for item in items:
                meta = item["metadata"]
                try:
                    self.delete(res, meta.get("namespace"), meta["name"], options, dry_run)
                    deleted.append(item)
                except ApiError as err:
                    if err.code != 404:
                        raise
            return self.list_object(res, deleted, str(self.store.resource_version))
