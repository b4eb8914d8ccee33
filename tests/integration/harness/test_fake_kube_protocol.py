"""Wire-level behaviour of the fake API server that clients rely on: discovery, tables,
watch semantics (410 Gone, bookmarks, timeouts, selector transitions), pagination, error codes,
finalizers, and the service proxy."""

import http.server
import json
import threading
import urllib.error
import urllib.request

import pytest

from tests.harness.fake_kube import FakeKubeAPI


def call(api, method, path, body=None, content_type="application/json", headers=None, raw=False, token=None):
    data = None
    if body is not None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    request = urllib.request.Request(api.url + path, data=data, method=method,
                                     headers={"Content-Type": content_type, **(headers or {})})
    try:
        with api.urlopen(request, timeout=10, token=token) as resp:
            payload = resp.read()
            return resp.status, (payload if raw else json.loads(payload or b"null"))
    except urllib.error.HTTPError as err:
        payload = err.read()
        return err.code, (payload if raw else json.loads(payload or b"null"))


def watch_lines(api, path):
    with api.urlopen(path, timeout=10) as resp:
        return [json.loads(line) for line in resp.read().splitlines() if line.strip()]


def cm(name, labels=None, namespace="default", **extra):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}, **extra}}


def test_discovery_documents(kube_api):
    assert call(kube_api, "GET", "/version")[1]["minor"] == "32"
    assert call(kube_api, "GET", "/api")[1]["versions"] == ["v1"]
    groups = {g["name"]: g for g in call(kube_api, "GET", "/apis")[1]["groups"]}
    for group in ("apps", "batch", "networking.k8s.io", "policy", "node.k8s.io", "coordination.k8s.io",
                  "rbac.authorization.k8s.io"):
        assert groups[group]["preferredVersion"]["version"] == "v1"
    core = {r["name"]: r for r in call(kube_api, "GET", "/api/v1")[1]["resources"]}
    assert core["pods"]["shortNames"] == ["po"] and core["pods"]["namespaced"] is True
    assert core["nodes"]["namespaced"] is False and "nodes/status" in core
    assert core["pods/log"]["verbs"] == ["get"] and "pods/status" in core
    assert "deletecollection" in core["configmaps"]["verbs"] and "watch" in core["events"]["verbs"]
    apps = {r["name"]: r for r in call(kube_api, "GET", "/apis/apps/v1")[1]["resources"]}
    assert apps["deployments/scale"] == {"name": "deployments/scale", "singularName": "", "namespaced": True,
                                         "kind": "Scale", "verbs": ["get", "patch", "update"],
                                         "group": "autoscaling", "version": "v1"}
    assert apps["deployments"]["shortNames"] == ["deploy"] and "deployments/status" in apps
    assert call(kube_api, "GET", "/apis/nothing.example.com/v1")[0] == 404
    assert call(kube_api, "GET", "/healthz", raw=True) == (200, b"ok")
    paths = call(kube_api, "GET", "/openapi/v3")[1]["paths"]
    assert "apis/apps/v1" in paths and "api/v1" in paths


def test_table_and_partial_metadata_content_negotiation(kube_api):
    kube_api.create(cm("a"))
    accept = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    table = call(kube_api, "GET", "/api/v1/namespaces/default/configmaps", headers=accept)[1]
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]
    assert [r["cells"][0] for r in table["rows"]] == ["a", "kube-root-ca.crt"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    partial = {"Accept": "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"}
    metas = call(kube_api, "GET", "/api/v1/namespaces/default/configmaps", headers=partial)[1]
    assert metas["kind"] == "PartialObjectMetadataList" and "data" not in metas["items"][0]


def test_watch_replays_from_resource_version_and_filters_by_selector(kube_api):
    rv = call(kube_api, "GET", "/api/v1/namespaces/default/configmaps")[1]["metadata"]["resourceVersion"]
    kube_api.create(cm("x", {"mode": "ml"}))
    kube_api.create(cm("y", {"mode": "r1"}))
    call(kube_api, "PATCH", "/api/v1/namespaces/default/configmaps/x", {"metadata": {"labels": {"mode": "off"}}},
         "application/merge-patch+json")
    events = watch_lines(kube_api, f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}"
                                   "&labelSelector=mode%20in%20(ml,r1)&timeoutSeconds=1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "x"), ("ADDED", "y"), ("DELETED", "x")], "leaving the selector reads as DELETED"
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)


def test_watch_without_resource_version_lists_current_state_then_bookmarks():
    with FakeKubeAPI(bookmark_interval=0.2, bookmark_deadline_margin=0.5) as api:
        api.create(cm("now"))
        events = watch_lines(api, "/api/v1/namespaces/default/configmaps?watch=true&allowWatchBookmarks=true"
                                  "&timeoutSeconds=2&fieldSelector=metadata.name%3Dnow")
    assert (events[0]["type"], events[0]["object"]["metadata"]["name"]) == ("ADDED", "now")
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    # every 0.2 s until 0.5 s before the 2 s timeout: at 0.2, 0.4, ... 1.4, then the pre-deadline one at 1.5
    assert 6 <= len(bookmarks) <= 9, len(bookmarks)
    assert set(bookmarks[0]["object"]) == {"kind", "apiVersion", "metadata"}
    assert bookmarks[0]["object"]["kind"] == "ConfigMap"


def test_watch_from_a_compacted_resource_version_is_410_gone():
    with FakeKubeAPI(watch_cache_size=5, event_fresh_seconds=0) as api:
        for n in range(10):
            api.create(cm(f"c{n}"))
        events = watch_lines(api, "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=3")
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
    assert status["message"].startswith("too old resource version: 3 (")


def test_pagination_with_limit_and_continue(kube_api):
    for n in range(5):
        kube_api.create(cm(f"p{n}", {"page": "yes"}))
    names, token = [], ""
    while True:
        page = call(kube_api, "GET", f"/api/v1/namespaces/default/configmaps?labelSelector=page&limit=2"
                                     f"&continue={token}")[1]
        names += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
    assert names == ["p0", "p1", "p2", "p3", "p4"]


@pytest.mark.parametrize("method, path, body, content_type, code", [
    ("PATCH", "/api/v1/namespaces/default/configmaps/kube-root-ca.crt", "{}", "application/xml", 415),
    ("PUT", "/api/v1/namespaces/default/configmaps", "{}", "application/json", 405),
    ("DELETE", "/api/v1/namespaces/default", None, "application/json", 200),
    ("POST", "/api/v1/namespaces/default/configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                       "metadata": {"name": "x", "namespace": "other"}},
     "application/json", 400),
    ("POST", "/api/v1/namespaces/default/configmaps", {"apiVersion": "apps/v1", "kind": "ConfigMap",
                                                       "metadata": {"name": "x"}}, "application/json", 400),
    ("PATCH", "/api/v1/namespaces/default/configmaps/new", '{"apiVersion":"v1","kind":"ConfigMap"}',
     "application/apply-patch+yaml", 422),
    ("GET", "/api/v1/namespaces/default/widgets", None, "application/json", 404),
    ("GET", "/api/v1/pods/x", None, "application/json", 404),
])
def test_error_codes(kube_api, method, path, body, content_type, code):
    status, payload = call(kube_api, method, path, body, content_type)
    assert status == code
    if code >= 400:
        assert payload["kind"] == "Status" and payload["code"] == code and payload["status"] == "Failure"


def test_apply_accepts_yaml_and_creates(kube_api):
    body = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  k: v\n"
    status, obj = call(kube_api, "PATCH", "/api/v1/namespaces/default/configmaps/from-yaml?fieldManager=t", body,
                       "application/apply-patch+yaml")
    assert status == 201 and obj["data"] == {"k": "v"}
    status, again = call(kube_api, "PATCH", "/api/v1/namespaces/default/configmaps/from-yaml?fieldManager=t",
                         body, "application/apply-patch+yaml")
    assert status == 200 and again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


def test_finalizers_hold_deletion_until_removed(kube_api):
    kube_api.create(cm("held", finalizers=["example.com/cleanup"]))
    status, obj = call(kube_api, "DELETE", "/api/v1/namespaces/default/configmaps/held")
    assert status == 200 and obj["metadata"]["deletionTimestamp"]
    assert obj["metadata"]["deletionGracePeriodSeconds"] == 0
    assert kube_api.get("ConfigMap", "held")["metadata"]["deletionTimestamp"]
    status, error = call(kube_api, "PATCH", "/api/v1/namespaces/default/configmaps/held",
                         {"metadata": {"finalizers": ["example.com/cleanup", "example.com/more"]}},
                         "application/merge-patch+json")
    assert (status, error["details"]["causes"][0]["message"]) == (
        422, 'Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers '
             '[]string{"example.com/more"}')
    call(kube_api, "PATCH", "/api/v1/namespaces/default/configmaps/held", {"metadata": {"finalizers": None}},
         "application/merge-patch+json")
    assert call(kube_api, "GET", "/api/v1/namespaces/default/configmaps/held")[0] == 404


class Backend(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802  (http.server API)
        body = json.dumps({"path": self.path, "auth": self.headers.get("Authorization")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_service_proxy_routes_through_endpoints_to_the_pod_network(kube_api):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        kube_api.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "vllm-api"},
                         "spec": {"selector": {"app": "vllm"}, "ports": [{"name": "http", "port": 8000}]}})
        status, body = call(kube_api, "GET", "/api/v1/namespaces/default/services/vllm-api:8000/proxy/health")
        assert (status, body["message"]) == (503, 'no endpoints available for service "vllm-api"')
        kube_api.create({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "vllm-api"},
                         "subsets": [{"addresses": [{"ip": "10.42.0.9"}],
                                      "ports": [{"name": "http", "port": 8000}]}]})
        status, body = call(kube_api, "GET", "/api/v1/namespaces/default/services/vllm-api:http/proxy/health")
        assert status == 503 and "10.42.0.9:8000" in body["message"]
        call(kube_api, "PUT", "/fake/v1/podnetwork/10.42.0.9/8000",
             {"url": f"http://127.0.0.1:{server.server_address[1]}"})
        status, body = call(kube_api, "GET", "/api/v1/namespaces/default/services/vllm-api/proxy/v1/models?x=1")
        assert status == 200 and body == {"path": "/v1/models?x=1", "auth": None}, "the caller's token stays behind"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_unknown_fields_are_dropped_warned_about_or_rejected(kube_api):
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "typo", "labelz": {"a": "b"}},
            "data": {"k": "v"}, "datta": {"x": "y"}}
    request = urllib.request.Request(kube_api.url + "/api/v1/namespaces/default/configmaps",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with kube_api.urlopen(request, timeout=5) as resp:
        warnings = resp.headers.get_all("Warning")
        created = json.loads(resp.read())
    assert sorted(warnings) == ['299 - "unknown field \\"datta\\""', '299 - "unknown field \\"metadata.labelz\\""']
    assert "datta" not in created and "labelz" not in created["metadata"] and created["data"] == {"k": "v"}

    body["metadata"]["name"] = "strict"
    status, error = call(kube_api, "POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Strict", body)
    assert (status, error["reason"]) == (400, "BadRequest")
    assert error["message"] == ('ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
                                'unknown field "metadata.labelz", unknown field "datta"')
    status, error = call(kube_api, "PATCH", "/api/v1/namespaces/default/configmaps/strict?fieldManager=t"
                                            "&fieldValidation=Strict", body, "application/apply-patch+yaml")
    assert status == 400 and error["message"] == ".metadata.labelz: field not declared in schema; " \
                                                 ".datta: field not declared in schema"
    assert call(kube_api, "GET", "/api/v1/namespaces/default/configmaps/strict")[0] == 404
