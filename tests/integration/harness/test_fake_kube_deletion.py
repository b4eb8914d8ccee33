"""Deletion as the API server does it, with no garbage collector running (the controller manager's job):
the owner goes (Background) or waits behind a GC finalizer (Foreground, Orphan), dependents are left
alone, finalizers hold objects, Jobs orphan their pods by default, and 202 only where the handler says."""

import json
import urllib.request

import pytest

CMS = "/api/v1/namespaces/default/configmaps"


def call(api, method, path, body=None, content_type="application/json"):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(api.url + path, data=data, method=method,
                                     headers={"Content-Type": content_type})
    try:
        with api.urlopen(request) as resp:
            return resp.status, json.loads(resp.read() or b"null"), resp.headers.get_all("Warning") or []
    except Exception as err:  # urllib's HTTPError
        return err.code, json.loads(err.read() or b"null"), []


def owner_and_dependent(api):
    owner = api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"],
           "blockOwnerDeletion": True}
    api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dependent", "ownerReferences": [ref]}})
    return owner


def test_background_deletes_the_owner_at_once_and_leaves_dependents_to_the_garbage_collector(kube_api):
    owner_and_dependent(kube_api)
    code, body, _warnings = call(kube_api, "DELETE", f"{CMS}/owner?propagationPolicy=Background")
    assert (code, body["status"], body["details"]["name"]) == (200, "Success", "owner")
    assert call(kube_api, "GET", f"{CMS}/owner")[0] == 404
    dependent = kube_api.get("ConfigMap", "dependent")
    assert dependent["metadata"]["ownerReferences"][0]["name"] == "owner", "untouched until a GC runs"
    assert "deletionTimestamp" not in dependent["metadata"]


@pytest.mark.parametrize("policy, finalizer", [("Foreground", "foregroundDeletion"), ("Orphan", "orphan")])
def test_foreground_and_orphan_hold_the_owner_behind_a_gc_finalizer(kube_api, policy, finalizer):
    owner_and_dependent(kube_api)
    code, body, _warnings = call(kube_api, "DELETE", f"{CMS}/owner?propagationPolicy={policy}")
    assert code == 200 and body["metadata"]["finalizers"] == [finalizer]
    assert body["metadata"]["deletionTimestamp"] and body["metadata"]["deletionGracePeriodSeconds"] == 0
    held = kube_api.get("ConfigMap", "owner")
    assert held["metadata"]["finalizers"] == [finalizer], "it stays until the garbage collector removes it"
    dependent = kube_api.get("ConfigMap", "dependent")
    assert dependent["metadata"]["ownerReferences"] and "deletionTimestamp" not in dependent["metadata"]
    # what the garbage collector does when it is done: remove the finalizer; the owner goes
    call(kube_api, "PATCH", f"{CMS}/owner", {"metadata": {"finalizers": None}}, "application/merge-patch+json")
    assert call(kube_api, "GET", f"{CMS}/owner")[0] == 404


def test_202_only_for_orphan_dependents_false_on_an_object_that_stays(kube_api):
    owner_and_dependent(kube_api)
    call(kube_api, "PATCH", f"{CMS}/owner", {"metadata": {"finalizers": ["example.com/keep"]}},
         "application/merge-patch+json")
    code, body, _warnings = call(kube_api, "DELETE", f"{CMS}/owner", {"orphanDependents": False})
    assert code == 202 and body["metadata"]["finalizers"] == ["example.com/keep"]
    code, body, _warnings = call(kube_api, "DELETE", f"{CMS}/dependent", {"orphanDependents": False})
    assert (code, body["status"]) == (200, "Success"), "gone at once: 200, whatever was asked"
    code, body, _warnings = call(kube_api, "DELETE", f"{CMS}/owner?propagationPolicy=Sometimes")
    assert code == 422 and body["details"]["causes"][0]["message"] == (
        'Unsupported value: "Sometimes": supported values: "Foreground", "Background", "Orphan", "nil"')


def test_jobs_orphan_their_pods_by_default_with_the_apiservers_warning(kube_api):
    kube_api.create({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"}, "spec": {"template": {
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}})
    code, body, warnings = call(kube_api, "DELETE", "/apis/batch/v1/namespaces/default/jobs/once")
    assert code == 200 and body["metadata"]["finalizers"] == ["orphan"]
    assert warnings == ['299 - "child pods are preserved by default when jobs are deleted; set '
                        'propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress '
                        'this warning"']


def test_deleting_again_changes_the_gc_finalizer(kube_api):
    owner_and_dependent(kube_api)
    call(kube_api, "DELETE", f"{CMS}/owner?propagationPolicy=Orphan")
    code, body, _warnings = call(kube_api, "DELETE", f"{CMS}/owner?propagationPolicy=Foreground")
    assert code == 200 and body["metadata"]["finalizers"] == ["foregroundDeletion"]
