"""The resource table: one row per kind drives discovery, routing, storage and OpenAPI.

Adding a kind to the fake API server is adding a `Resource` row here; nothing else is keyed by
test or by client. Per-kind behaviour that a real apiserver implements in its registry strategies
(defaulting, validation, printer columns) lives in `defaults.py` and `tables.py`, keyed by kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
NO_COLLECTION = ("create", "delete", "get", "list", "patch", "update", "watch")
STATUS_VERBS = ("get", "patch", "update")
PROXY_VERBS = ("create", "delete", "get", "patch", "update")


@dataclass(frozen=True)
class Subresource:
    name: str  # "status", "scale", "log", ...
    kind: str
    verbs: Tuple[str, ...]
    group: str = ""  # set when the subresource's kind lives in another group (Scale: autoscaling/v1)
    version: str = ""


@dataclass(frozen=True)
class ScaleSpec:
    """Where a scalable kind keeps its replica counts (the `/scale` subresource maps these)."""

    spec_replicas: Tuple[str, ...] = ("spec", "replicas")
    status_replicas: Tuple[str, ...] = ("status", "replicas")
    selector: Tuple[str, ...] = ("spec", "selector")


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: Tuple[str, ...] = ()
    verbs: Tuple[str, ...] = ALL_VERBS
    subresources: Tuple[Subresource, ...] = ()
    categories: Tuple[str, ...] = ()
    # metadata.generation is set and bumped on spec changes (kinds with a spec/status split)
    generation: bool = False
    # a status subresource exists: main-resource writes keep the stored status
    has_status: bool = False
    scale: Optional[ScaleSpec] = None
    # DELETE answers with the deleted object rather than a Success Status (apiserver ReturnDeletedObject)
    return_deleted: bool = False
    # the strategy's AllowUnconditionalUpdate: a PUT without metadata.resourceVersion overwrites the
    # live object; when False (Leases, RuntimeClasses) it is refused with 422
    unconditional_update: bool = True
    # the strategy's AllowCreateOnUpdate: a PUT to a missing object creates it
    create_on_update: bool = False
    # the strategy's DefaultGarbageCollectionPolicy: "Background" (DeleteDependents) or "Orphan"
    # (batch/v1 Jobs keep their pods unless told otherwise, for backwards compatibility)
    default_propagation: str = "Background"
    # a review kind (SelfSubjectAccessReview, TokenReview): POST computes the answer, nothing is stored
    virtual: bool = False

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def subresource(self, name: str) -> Optional[Subresource]:
        for sub in self.subresources:
            if sub.name == name:
                return sub
        return None

    def discovery(self) -> List[Dict]:
        """This resource and its subresources as `APIResource` entries of an APIResourceList."""
        entries = [{
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }]
        if self.short_names:
            entries[0]["shortNames"] = list(self.short_names)
        if self.categories:
            entries[0]["categories"] = list(self.categories)
        for sub in self.subresources:
            entry = {
                "name": f"{self.plural}/{sub.name}",
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": sub.kind,
                "verbs": list(sub.verbs),
            }
            if sub.group:
                entry["group"] = sub.group
                entry["version"] = sub.version
            entries.append(entry)
        return entries


def _status(kind: str) -> Subresource:
    return Subresource("status", kind, STATUS_VERBS)


SCALE = Subresource("scale", "Scale", STATUS_VERBS, group="autoscaling", version="v1")
ALL = ("all",)

RESOURCES: Tuple[Resource, ...] = (
    # core/v1
    Resource("", "v1", "namespaces", "Namespace", False, ("ns",), NO_COLLECTION,
             (_status("Namespace"), Subresource("finalize", "Namespace", ("update",))), has_status=True),
    Resource("", "v1", "pods", "Pod", True, ("po",), ALL_VERBS,
             (_status("Pod"), Subresource("log", "Pod", ("get",)), Subresource("binding", "Binding", ("create",)),
              Subresource("eviction", "Eviction", ("create",), group="policy", version="v1"),
              Subresource("proxy", "PodProxyOptions", PROXY_VERBS)),
             ALL, has_status=True, return_deleted=True),
    Resource("", "v1", "services", "Service", True, ("svc",), ALL_VERBS,
             (_status("Service"), Subresource("proxy", "ServiceProxyOptions", PROXY_VERBS)),
             ALL, has_status=True, return_deleted=True),
    Resource("", "v1", "endpoints", "Endpoints", True, ("ep",), create_on_update=True),
    Resource("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    Resource("", "v1", "secrets", "Secret", True),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",), ALL_VERBS,
             (Subresource("token", "TokenRequest", ("create",), group="authentication.k8s.io", version="v1"),),
             return_deleted=True),
    Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",), ALL_VERBS,
             (_status("PersistentVolumeClaim"),), has_status=True, return_deleted=True),
    Resource("", "v1", "persistentvolumes", "PersistentVolume", False, ("pv",), ALL_VERBS,
             (_status("PersistentVolume"),), has_status=True, return_deleted=True),
    Resource("", "v1", "nodes", "Node", False, ("no",), ALL_VERBS,
             (_status("Node"), Subresource("proxy", "NodeProxyOptions", PROXY_VERBS)), has_status=True),
    Resource("", "v1", "events", "Event", True, ("ev",), create_on_update=True),
    Resource("", "v1", "limitranges", "LimitRange", True, ("limits",)),
    Resource("", "v1", "resourcequotas", "ResourceQuota", True, ("quota",), ALL_VERBS,
             (_status("ResourceQuota"),), has_status=True, return_deleted=True),
    # apps/v1
    Resource("apps", "v1", "deployments", "Deployment", True, ("deploy",), ALL_VERBS,
             (_status("Deployment"), SCALE), ALL, generation=True, has_status=True, scale=ScaleSpec()),
    Resource("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), ALL_VERBS,
             (_status("ReplicaSet"), SCALE), ALL, generation=True, has_status=True, scale=ScaleSpec()),
    Resource("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), ALL_VERBS,
             (_status("StatefulSet"), SCALE), ALL, generation=True, has_status=True, scale=ScaleSpec()),
    Resource("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), ALL_VERBS,
             (_status("DaemonSet"),), ALL, generation=True, has_status=True),
    Resource("apps", "v1", "controllerrevisions", "ControllerRevision", True),
    # batch/v1
    Resource("batch", "v1", "jobs", "Job", True, (), ALL_VERBS, (_status("Job"),), ALL,
             generation=True, has_status=True, default_propagation="Orphan"),
    Resource("batch", "v1", "cronjobs", "CronJob", True, ("cj",), ALL_VERBS, (_status("CronJob"),), ALL,
             generation=True, has_status=True),
    # networking.k8s.io/v1
    Resource("networking.k8s.io", "v1", "ingresses", "Ingress", True, ("ing",), ALL_VERBS,
             (_status("Ingress"),), generation=True, has_status=True),
    Resource("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False),
    Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",),
             generation=True),
    # policy/v1
    Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",), ALL_VERBS,
             (_status("PodDisruptionBudget"),), generation=True, has_status=True),
    # node.k8s.io/v1
    Resource("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", False, unconditional_update=False,
             create_on_update=True),
    # coordination.k8s.io/v1
    Resource("coordination.k8s.io", "v1", "leases", "Lease", True, unconditional_update=False,
             create_on_update=True),
    # rbac.authorization.k8s.io/v1
    Resource("rbac.authorization.k8s.io", "v1", "roles", "Role", True, create_on_update=True),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True, create_on_update=True),
    Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, create_on_update=True),
    Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False,
             create_on_update=True),
    # authentication.k8s.io/v1, authorization.k8s.io/v1: reviews are answered, never stored
    Resource("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False, verbs=("create",),
             virtual=True),
    Resource("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False, verbs=("create",), virtual=True),
    Resource("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False,
             verbs=("create",), virtual=True),
    Resource("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", False,
             verbs=("create",), virtual=True),
    # storage.k8s.io/v1
    Resource("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, ("sc",)),
    # autoscaling/v2
    Resource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True, ("hpa",),
             ALL_VERBS, (_status("HorizontalPodAutoscaler"),), ALL, has_status=True),
)

# group/versions served without resources of their own (none today; an empty APIResourceList
# makes kubectl's discovery cache complain, so autoscaling/v1 for Scale is not listed)
EXTRA_GROUP_VERSIONS: Tuple[Tuple[str, str], ...] = ()


@dataclass
class ResourceTable:
    resources: Tuple[Resource, ...] = RESOURCES
    _by_path: Dict[Tuple[str, str, str], Resource] = field(default_factory=dict)
    _by_kind: Dict[Tuple[str, str], Resource] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for res in self.resources:
            self._by_path[(res.group, res.version, res.plural)] = res
            self._by_kind[(res.api_version, res.kind)] = res

    def lookup(self, group: str, version: str, plural: str) -> Optional[Resource]:
        return self._by_path.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> Optional[Resource]:
        return self._by_kind.get((api_version, kind))

    def kind_named(self, kind: str) -> Resource:
        for res in self.resources:
            if res.kind == kind:
                return res
        raise KeyError(kind)

    def groups(self) -> List[Tuple[str, List[str]]]:
        """[(group, [versions...])] for named groups, in table order (core excluded)."""
        out: Dict[str, List[str]] = {}
        for group, version in [(r.group, r.version) for r in self.resources] + list(EXTRA_GROUP_VERSIONS):
            if group and version not in out.setdefault(group, []):
                out[group].append(version)
        return list(out.items())

    def in_group_version(self, group: str, version: str) -> Iterable[Resource]:
        return [r for r in self.resources if r.group == group and r.version == version]

    def has_group_version(self, group: str, version: str) -> bool:
        return any(g == group and version in vs for g, vs in self.groups()) or (group == "" and version == "v1")
