"""RBAC: the authorizer of a k3s API server (`--authorization-mode=Node,RBAC`, the Node part not
modelled) and the default ClusterRoles and bindings every cluster starts with.

`authorize(user, groups, request)` grants a request when the user is in `system:masters` or a rule
reached through a ClusterRoleBinding (any namespace) or a RoleBinding (its own namespace) matches:
verbs, apiGroups, resources (`*`, `pods`, `deployments/scale`, `*/scale`), resourceNames and, for
non-resource requests, nonResourceURLs (`/healthz`, `/apis/*`). Subjects are Users, Groups and
ServiceAccounts (`system:serviceaccount:<ns>:<name>`, namespace defaulting to the RoleBinding's).
A denied request is 403 with the apiserver's text:
`deployments.apps "x" is forbidden: User "system:serviceaccount:ml:router" cannot patch resource
"deployments/scale" in API group "apps" in the namespace "ml"`.

Default roles (bootstrap policy, trimmed to the resources this fake serves): `cluster-admin`,
`admin`, `edit`, `view` (with the rules the aggregation controller gives them), `system:discovery`,
`system:basic-user`, `system:public-info-viewer`, bound as a real cluster binds them.
Privilege escalation checks on Role/RoleBinding writes are not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Iterable, List

from .errors import ApiError

if TYPE_CHECKING:  # pragma: no cover
    from .registry import Registry

RBAC_GROUP = "rbac.authorization.k8s.io"
READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]


@dataclass
class RequestAttributes:
    verb: str
    resource_request: bool
    path: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""


@dataclass
class User:
    name: str
    groups: List[str] = field(default_factory=list)
    uid: str = ""


def _rule(groups: Iterable[str], resources: Iterable[str], verbs: Iterable[str]) -> Dict[str, Any]:
    return {"apiGroups": list(groups), "resources": list(resources), "verbs": list(verbs)}


# what view/edit/admin cover in a 1.32 cluster (aggregated from system:aggregate-to-*), for the kinds served here
_VIEW_CORE = ["configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "pods",
              "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
              "services/status", "bindings", "events", "limitranges", "namespaces/status", "pods/log",
              "pods/status", "replicationcontrollers/status", "resourcequotas", "resourcequotas/status", "namespaces"]
_APPS = ["controllerrevisions", "daemonsets", "daemonsets/status", "deployments", "deployments/scale",
         "deployments/status", "replicasets", "replicasets/scale", "replicasets/status", "statefulsets",
         "statefulsets/scale", "statefulsets/status"]


def _view_rules() -> List[Dict[str, Any]]:
    return [_rule([""], _VIEW_CORE, READ), _rule(["apps"], _APPS, READ),
            _rule(["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"], READ),
            _rule(["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"], READ),
            _rule(["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"], READ),
            _rule(["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"], READ),
            _rule(["discovery.k8s.io"], ["endpointslices"], READ)]


def _edit_rules() -> List[Dict[str, Any]]:
    return _view_rules() + [
        _rule([""], ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"],
              READ),
        _rule([""], ["serviceaccounts"], ["impersonate"]),
        _rule([""], ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"], WRITE),
        _rule([""], ["pods/eviction"], ["create"]),
        _rule([""], ["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
                     "replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy"],
              WRITE),
        _rule([""], ["serviceaccounts/token"], ["create"]),
        _rule(["apps"], ["daemonsets", "deployments", "deployments/rollback", "deployments/scale", "replicasets",
                         "replicasets/scale", "statefulsets", "statefulsets/scale"], WRITE),
        _rule(["autoscaling"], ["horizontalpodautoscalers"], WRITE),
        _rule(["batch"], ["cronjobs", "jobs"], WRITE),
        _rule(["policy"], ["poddisruptionbudgets"], WRITE),
        _rule(["networking.k8s.io"], ["ingresses", "networkpolicies"], WRITE),
        _rule(["coordination.k8s.io"], ["leases"], READ + WRITE),
    ]


def _admin_rules() -> List[Dict[str, Any]]:
    return _edit_rules() + [
        _rule(["authorization.k8s.io"], ["localsubjectaccessreviews"], ["create"]),
        _rule([RBAC_GROUP], ["rolebindings", "roles"], READ + WRITE),
    ]


def _meta(name: str) -> Dict[str, Any]:
    return {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}}


def _cluster_role(name: str, rules: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRole", "metadata": _meta(name), "rules": rules}


def _group_binding(name: str, role: str, groups: Iterable[str]) -> Dict[str, Any]:
    return {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRoleBinding", "metadata": _meta(name),
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": g} for g in groups]}


def bootstrap_policy() -> List[Dict[str, Any]]:
    """The default ClusterRoles and ClusterRoleBindings (a subset of kube-apiserver's bootstrap policy)."""
    discovery_urls = ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
                      "/readyz", "/version", "/version/"]
    return [
        _cluster_role("cluster-admin", [_rule(["*"], ["*"], ["*"]), {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
        _cluster_role("admin", _admin_rules()),
        _cluster_role("edit", _edit_rules()),
        _cluster_role("view", _view_rules()),
        _cluster_role("system:discovery", [{"nonResourceURLs": discovery_urls, "verbs": ["get"]}]),
        _cluster_role("system:public-info-viewer", [{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version",
                                                                         "/version/"], "verbs": ["get"]}]),
        _cluster_role("system:basic-user", [
            _rule(["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], ["create"]),
            _rule(["authentication.k8s.io"], ["selfsubjectreviews"], ["create"])]),
        _group_binding("cluster-admin", "cluster-admin", ["system:masters"]),
        _group_binding("system:discovery", "system:discovery", ["system:authenticated"]),
        _group_binding("system:basic-user", "system:basic-user", ["system:authenticated"]),
        _group_binding("system:public-info-viewer", "system:public-info-viewer",
                       ["system:authenticated", "system:unauthenticated"]),
    ]


# ------------------------------------------------------------------ matching


def _subject_matches(subject: Dict[str, Any], user: User, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return name == user.name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == f"system:serviceaccount:{namespace}:{name}"
    return False


def _resource_matches(rule: Dict[str, Any], attrs: RequestAttributes) -> bool:
    combined = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
    for resource in rule.get("resources") or []:
        if resource in ("*", combined):
            return True
        if attrs.subresource and resource == f"*/{attrs.subresource}":
            return True
    return False


def rule_allows(rule: Dict[str, Any], attrs: RequestAttributes) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    if not attrs.resource_request:
        for url in rule.get("nonResourceURLs") or []:
            if url == "*" or url == attrs.path or (url.endswith("*") and attrs.path.startswith(url[:-1])):
                return True
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and attrs.api_group not in groups:
        return False
    if not _resource_matches(rule, attrs):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


class Authorizer:
    def __init__(self, registry: "Registry") -> None:
        self.registry = registry

    def _role_rules(self, ref: Dict[str, Any], namespace: str) -> List[Dict[str, Any]]:
        table, store = self.registry.table, self.registry.store
        if ref.get("kind") == "ClusterRole":
            role = store.peek(table.lookup(RBAC_GROUP, "v1", "clusterroles"), None, ref.get("name", ""))
        else:
            role = store.peek(table.lookup(RBAC_GROUP, "v1", "roles"), namespace, ref.get("name", ""))
        return list((role or {}).get("rules") or [])

    def rules_for(self, user: User, namespace: str) -> List[Dict[str, Any]]:
        table, store = self.registry.table, self.registry.store
        rules: List[Dict[str, Any]] = []
        with store.lock:
            for binding in store.items(table.lookup(RBAC_GROUP, "v1", "clusterrolebindings")):
                if any(_subject_matches(s, user, "") for s in binding.get("subjects") or []):
                    rules += self._role_rules(binding.get("roleRef") or {}, "")
            if namespace:
                for binding in store.items(table.lookup(RBAC_GROUP, "v1", "rolebindings"), namespace):
                    if any(_subject_matches(s, user, namespace) for s in binding.get("subjects") or []):
                        rules += self._role_rules(binding.get("roleRef") or {}, namespace)
        return rules

    def allowed(self, user: User, attrs: RequestAttributes) -> bool:
        if "system:masters" in user.groups:
            return True
        return any(rule_allows(rule, attrs) for rule in self.rules_for(user, attrs.namespace))

    def check(self, user: User, attrs: RequestAttributes) -> None:
        if not self.allowed(user, attrs):
            raise forbidden(user, attrs)


def forbidden(user: User, attrs: RequestAttributes) -> ApiError:
    """responsewriters.ForbiddenStatusError."""
    if not attrs.resource_request:
        return ApiError(403, f'forbidden: User "{user.name}" cannot {attrs.verb} path "{attrs.path}"',
                        reason="Forbidden", details={})
    resource = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    why = (f'User "{user.name}" cannot {attrs.verb} resource "{resource}" in API group "{attrs.api_group}" '
           f"{where}")
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    subject = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    return ApiError(403, f"{subject} is forbidden: {why}", reason="Forbidden", name=attrs.name or None,
                    group=attrs.api_group, kind=attrs.resource)


def review_status(allowed: bool) -> Dict[str, Any]:
    return {"allowed": allowed, **({} if allowed else {"reason": ""})}


def self_subject_access_review(authorizer: Authorizer, user: User, body: Dict[str, Any]) -> Dict[str, Any]:
    spec = (body or {}).get("spec") or {}
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    if resource:
        attrs = RequestAttributes(verb=resource.get("verb", ""), resource_request=True,
                                  api_group=resource.get("group", ""), resource=resource.get("resource", ""),
                                  subresource=resource.get("subresource", ""),
                                  namespace=resource.get("namespace", ""), name=resource.get("name", ""))
    elif non_resource:
        attrs = RequestAttributes(verb=non_resource.get("verb", ""), resource_request=False,
                                  path=non_resource.get("path", ""))
    else:
        raise ApiError(422, 'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: spec.resourceAttributes: '
                            "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes "
                            "must be specified", reason="Invalid")
    allowed = authorizer.allowed(user, attrs)
    out = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
           "metadata": {"creationTimestamp": None}, "spec": spec, "status": {"allowed": allowed}}
    if not allowed:
        out["status"]["reason"] = ""
    return out


def request_attributes(method: str, path: str, query: Dict[str, str]) -> RequestAttributes:
    """k8s.io/apiserver/pkg/endpoints/request.RequestInfoFactory: verb, resource, namespace, name."""
    parts = [p for p in path.split("/") if p]
    verb_by_method = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
                      "DELETE": "delete"}
    method_verb = verb_by_method.get(method, method.lower())
    if not parts or parts[0] not in ("api", "apis"):
        return RequestAttributes(verb=method_verb, resource_request=False, path=path)
    if parts[0] == "api":
        prefix_len, group = 2, ""
    else:
        if len(parts) < 3:
            return RequestAttributes(verb=method_verb, resource_request=False, path=path)
        prefix_len, group = 3, parts[1]
    rest = parts[prefix_len:]
    if not rest:
        return RequestAttributes(verb=method_verb, resource_request=False, path=path)
    attrs = RequestAttributes(verb=method_verb, resource_request=True, path=path, api_group=group)
    if rest[0] == "namespaces" and len(rest) > 1:
        attrs.namespace = rest[1]
        if len(rest) > 2 and rest[2] not in ("status", "finalize"):
            rest = rest[2:]
    attrs.resource = rest[0]
    if len(rest) > 1:
        attrs.name = rest[1]
    if len(rest) > 2:
        attrs.subresource = rest[2]
    if method in ("GET", "HEAD"):
        if not attrs.name:
            attrs.verb = "watch" if (query.get("watch") or "").lower() in ("1", "true") else "list"
            # a list or watch of one object by name (fieldSelector metadata.name=<name>) is authorized against
            # resourceNames, as the apiserver's RequestInfoFactory does (how a kubelet watches one Secret)
            attrs.name = _exact_name(query.get("fieldSelector") or "")
        elif (query.get("watch") or "").lower() in ("1", "true"):
            attrs.verb = "watch"
    if method == "DELETE" and not attrs.name:
        attrs.verb = "deletecollection"
    return attrs


def _exact_name(field_selector: str) -> str:
    """The name a field selector requires exactly (``metadata.name=x`` or ``metadata.name==x``), else ""."""
    for term in field_selector.split(","):
        key, sep, value = term.partition("==") if "==" in term else term.partition("=")
        if sep and key.strip() == "metadata.name" and not key.endswith("!"):
            return value.strip()
    return ""


def user_info(name: str, groups: Iterable[str], uid: str = "") -> User:
    groups = list(groups)
    if name != "system:anonymous" and "system:authenticated" not in groups:
        groups.append("system:authenticated")
    return User(name, groups, uid)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", reason="Unauthorized")
