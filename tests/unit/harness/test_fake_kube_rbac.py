"""RBAC rule matching and request attributes (RequestInfoFactory) of the fake API server."""

import pytest

from tests.harness.fake_kube.rbac import RequestAttributes, User, forbidden, request_attributes, rule_allows


@pytest.mark.parametrize("method, path, query, expected", [
    ("GET", "/api/v1/namespaces/ml/pods", {}, ("list", "", "pods", "", "ml", "")),
    ("GET", "/api/v1/namespaces/ml/pods", {"watch": "true"}, ("watch", "", "pods", "", "ml", "")),
    ("GET", "/api/v1/namespaces/ml/pods/p/log", {}, ("get", "", "pods", "log", "ml", "p")),
    ("PATCH", "/apis/apps/v1/namespaces/ml/deployments/d/scale", {}, ("patch", "apps", "deployments", "scale", "ml",
                                                                      "d")),
    ("POST", "/api/v1/namespaces/ml/serviceaccounts/router/token", {}, ("create", "", "serviceaccounts", "token",
                                                                        "ml", "router")),
    ("DELETE", "/api/v1/namespaces/ml/configmaps", {}, ("deletecollection", "", "configmaps", "", "ml", "")),
    ("GET", "/api/v1/namespaces/ml", {}, ("get", "", "namespaces", "", "ml", "ml")),
    ("PUT", "/api/v1/namespaces/ml/finalize", {}, ("update", "", "namespaces", "finalize", "ml", "ml")),
    ("GET", "/api/v1/nodes", {}, ("list", "", "nodes", "", "", "")),
    ("GET", "/api/v1/namespaces/ml/services/vllm:8000/proxy/v1/models", {},
     ("get", "", "services", "proxy", "ml", "vllm:8000")),
])
def test_resource_request_attributes(method, path, query, expected):
    attrs = request_attributes(method, path, query)
    assert attrs.resource_request
    assert (attrs.verb, attrs.api_group, attrs.resource, attrs.subresource, attrs.namespace, attrs.name) == expected


@pytest.mark.parametrize("path", ["/healthz", "/version", "/api", "/api/v1", "/apis", "/apis/apps", "/apis/apps/v1",
                                  "/openapi/v3"])
def test_discovery_and_health_are_non_resource_requests(path):
    attrs = request_attributes("GET", path, {})
    assert not attrs.resource_request and attrs.verb == "get" and attrs.path == path


def attrs(verb, resource, group="", subresource="", name="", namespace="ml"):
    return RequestAttributes(verb, True, "", group, resource, subresource, namespace, name)


@pytest.mark.parametrize("rule, request_attrs, allowed", [
    ({"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}, attrs("get", "deployments", "apps"),
     True),
    ({"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}, attrs("list", "deployments", "apps"),
     False),
    ({"apiGroups": [""], "resources": ["deployments"], "verbs": ["get"]}, attrs("get", "deployments", "apps"), False),
    ({"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]},
     attrs("patch", "deployments", "apps", "scale"), False),
    ({"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["patch"]},
     attrs("patch", "deployments", "apps", "scale"), True),
    ({"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["patch"]},
     attrs("patch", "statefulsets", "apps", "scale"), True),
    ({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, attrs("delete", "leases", "coordination.k8s.io"), True),
    ({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["gpu-mode"],
      "verbs": ["get", "update"]}, attrs("update", "leases", "coordination.k8s.io", name="gpu-mode"), True),
    ({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["gpu-mode"],
      "verbs": ["get", "update"]}, attrs("update", "leases", "coordination.k8s.io", name="other"), False),
    ({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["gpu-mode"],
      "verbs": ["list"]}, attrs("list", "leases", "coordination.k8s.io"), False),
    ({"nonResourceURLs": ["/apis/*"], "verbs": ["get"]}, RequestAttributes("get", False, "/apis/apps/v1"), True),
    ({"nonResourceURLs": ["/healthz"], "verbs": ["get"]}, RequestAttributes("get", False, "/healthz/etcd"), False),
])
def test_rule_matching(rule, request_attrs, allowed):
    assert rule_allows(rule, request_attrs) is allowed


def test_forbidden_messages_are_the_apiservers():
    sa = User("system:serviceaccount:ml:router", ["system:serviceaccounts"])
    err = forbidden(sa, attrs("patch", "deployments", "apps", "scale", "chat"))
    assert (err.code, err.body["reason"]) == (403, "Forbidden")
    assert err.body["message"] == ('deployments.apps "chat" is forbidden: User "system:serviceaccount:ml:router" '
                                   'cannot patch resource "deployments/scale" in API group "apps" in the namespace '
                                   '"ml"')
    assert err.body["details"] == {"name": "chat", "group": "apps", "kind": "deployments"}
    err = forbidden(sa, attrs("list", "nodes", namespace=""))
    assert err.body["message"] == ('nodes is forbidden: User "system:serviceaccount:ml:router" cannot list resource '
                                   '"nodes" in API group "" at the cluster scope')
    err = forbidden(User("system:anonymous"), RequestAttributes("get", False, "/metrics"))
    assert err.body["message"] == 'forbidden: User "system:anonymous" cannot get path "/metrics"'
