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

from . import admission, defaults, managed, preconditions, rbac, validation
from .decode import DecodeError, decode
from .deletion import Deletion
from .errors import ApiError, already_exists, conflict, invalid, not_found
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

# k3s (1.28.x and later) pre-installs a RuntimeClass for every runtime it can detect on a node
# (its packaged manifests/runtimes.yaml), whether or not any node has it
K3S_RUNTIME_CLASSES = ("nvidia", "nvidia-experimental", "crun", "lunatic", "slight", "spin", "wws", "wasmedge",
                       "wasmer", "wasmtime")


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


class Registry(Deletion):
    def __init__(self, store: Store, table: ResourceTable, ca_pem: str = "") -> None:
        self.store = store
        self.table = table
        self.ca_pem = ca_pem  # the cluster CA, published in every namespace's kube-root-ca.crt
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
    def bootstrap(self, disable: Tuple[str, ...] = ()) -> None:
        """What a fresh k3s cluster has before anyone touches it: its namespaces, the default RBAC
        policy, the `kubernetes` Service and, unless `disable` names "runtimes" (`k3s server
        --disable=runtimes`), the RuntimeClasses of k3s' packaged runtimes manifest."""
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create(self.namespaces, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                        "k3s")
        for obj in rbac.bootstrap_policy():
            self.create(self.table.by_kind(obj["apiVersion"], obj["kind"]), None, obj, "kube-apiserver")
        if "runtimes" not in disable:
            classes = self.table.lookup("node.k8s.io", "v1", "runtimeclasses")
            for handler in K3S_RUNTIME_CLASSES:
                self.create(classes, None, {"metadata": {"name": handler}, "handler": handler}, "k3s")
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
             field_selector: Optional[str] = None, at_rv: Optional[int] = None) -> Tuple[List[Dict[str, Any]], str]:
        """Matching objects ordered by namespace/name, and the list's resourceVersion: the current state,
        or the state at revision `at_rv` (410 once etcd's history no longer has it)."""
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector)
        with self.store.lock:
            found = self.store.items(res, namespace) if at_rv is None else self.store.state_at(res, namespace, at_rv)
            items = [clone(o) for o in found
                     if labels_match(labels, (o.get("metadata") or {}).get("labels")) and fields_match(fields, o)]
            return items, str(self.store.resource_version if at_rv is None else at_rv)

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

    def decode(self, res: Resource, obj: Dict[str, Any], how: str = "body") -> List[str]:
        """Decode `obj` into the kind's Go type (decode.py): 400 BadRequest (422 `patch` for a patch's
        result) when it does not fit; returns the missing required fields for validation."""
        try:
            return decode(obj)
        except DecodeError as err:
            if how == "patch":
                shown = json.dumps(json.dumps(obj, separators=(",", ":")))
                raise invalid("", "", "", [{"reason": "FieldValueInvalid", "field": "patch",
                                            "message": f"Invalid value: {shown}: {err}"}]) from None
            raise ApiError(400, f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: '
                                f"{err}") from None

    def validate(self, res: Resource, obj: Dict[str, Any], old: Optional[Dict[str, Any]] = None,
                 missing: Optional[List[str]] = None) -> None:
        errors = validation.validate(res.kind, obj, old, res.namespaced, missing)
        if errors:
            meta = obj.get("metadata") or {}
            raise invalid(res.kind, res.group, meta.get("name") or meta.get("generateName", ""), errors)

    def create(self, res: Resource, namespace: Optional[str], body: Any, manager: str,
               dry_run: bool = False, managed_already: bool = False, validation: str = "Warn",
               warnings: Optional[List[str]] = None, missing: Optional[List[str]] = None) -> Dict[str, Any]:
        with self.store.lock:
            body = self._prepare_body(res, namespace, clone(body))
            if missing is None:  # server-side apply decoded its merged object already
                missing = self.decode(res, body)
            self._check_fields(res, body, validation, warnings)
            meta = body["metadata"]
            self.check_namespace(res, namespace)
            admission.namespace_lifecycle(self, res, namespace, meta)
            admission.admit_create(self, res, body)  # before the name is generated, like the real server
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
            self.validate(res, body, missing=missing)
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
                                    "data": {"ca.crt": self.ca_pem}}, "kube-controller-manager")

    # ------------------------------------------------------------ update
    def _write(self, res: Resource, old: Dict[str, Any], new: Dict[str, Any], manager: str,
               subresource: str = "", managed_already: bool = False, dry_run: bool = False,
               missing: Optional[List[str]] = None) -> Dict[str, Any]:
        """Store `new` (a fresh copy the caller hands over) as the next state of `old` (a snapshot
        that is only read), following the kind's update strategy. `missing`: required fields the
        caller's decode() found absent (None when the server built `new` itself)."""
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
            self.validate(res, new, old, missing)
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
        stored_meta = stored["metadata"]
        if stored_meta.get("deletionTimestamp") and not stored_meta.get("finalizers") and \
                stored_meta.get("deletionGracePeriodSeconds") == 0:  # the store's shouldDeleteDuringUpdate
            return self._remove(res, stored)
        return stored

    def write_as_controller(self, res: Resource, old: Dict[str, Any], new: Dict[str, Any],
                            manager: str) -> Dict[str, Any]:
        """An update by an in-process controller (an object it read and changed), with optimistic locking."""
        with self.store.lock:
            return self._write(res, old, new, manager)

    def replace(self, res: Resource, namespace: Optional[str], name: str, body: Any, manager: str,
                subresource: str = "", dry_run: bool = False, validation: str = "Warn",
                warnings: Optional[List[str]] = None) -> Tuple[Dict[str, Any], bool]:
        """PUT. Returns (object, created): kinds whose strategy allows create-on-update (Leases,
        RuntimeClasses, Endpoints, Events, RBAC) create a missing object."""
        with self.store.lock:
            body = self._prepare_body(res, namespace, clone(body), url_name=name)
            missing = self.decode(res, body)
            self._check_fields(res, body, validation, warnings)
            old = self.store.peek(res, namespace, name)
            if old is None:
                if res.create_on_update and not subresource:
                    return self.create(res, namespace, body, manager, dry_run, missing=missing), True
                raise not_found(res.plural, res.group, name)
            preconditions.check_update(res, old, body)
            return self._write(res, old, body, manager, subresource, dry_run=dry_run, missing=missing), False

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
            missing = self.decode(res, patched, "patch")
            self._check_fields(res, patched, validation, warnings)
            preconditions.check_patch(res, old, patched)
            if (patched.get("metadata") or {}).get("name", name) != name:
                raise ApiError(400, f"the name of the object ({patched['metadata']['name']}) does not match the "
                                    f"name on the URL ({name})")
            return self._write(res, old, patched, manager or "unknown", subresource, dry_run=dry_run,
                               missing=missing), False

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
        self.decode(res, applied)  # the applied configuration itself must decode (types, quantities, times)
        self._check_fields(res, applied, validation, warnings, apply=True)
        live = self.store.peek(res, namespace, name)
        now = utc_now()
        if live is None:
            if subresource:
                raise not_found(res.plural, res.group, name)
            self.check_namespace(res, namespace)
            merged = managed.apply(None, applied, manager, force, res.api_version, now, res.plural, res.group)
            missing = self.decode(res, merged)
            return self.create(res, namespace, merged, manager, dry_run=dry_run, managed_already=True,
                               missing=missing), True
        preconditions.check_apply(res, live, applied)
        merged = managed.apply(live, applied, manager, force, res.api_version, now, res.plural, res.group,
                               subresource)
        missing = self.decode(res, merged)
        return self._write(res, live, merged, manager, subresource, managed_already=True, dry_run=dry_run,
                           missing=missing), False

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
