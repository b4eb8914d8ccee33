"""Leases and write preconditions as a real API server enforces them: a Lease PUT needs a
resourceVersion, Lease times are MicroTime, a stale resourceVersion conflicts on every kind of write,
and DeleteOptions preconditions name the incarnation of an object (uid)."""

import json

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from ansible_collections.baremetal.gpu.plugins.module_utils.kube import KubeError

LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
STALE = "the object has been modified; please apply your changes to the latest version and try again"


def lease(name="gpu-mode", **spec):
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name},
            "spec": {"holderIdentity": "switch-a", "leaseDurationSeconds": 60,
                     "acquireTime": "2025-06-01T10:00:00.000000Z", "renewTime": "2025-06-01T10:00:00.000000Z",
                     **spec}}


def refusal(call):
    with pytest.raises((ApiException, KubeError)) as err:
        call()
    if isinstance(err.value, KubeError):
        return err.value.status, err.value.body
    return err.value.status, json.loads(err.value.body)


def test_a_lease_update_without_resource_version_is_refused(collection_kube):
    created = collection_kube.request("POST", LEASES, None, lease())
    unconditional = lease(holderIdentity="switch-b")
    code, status = refusal(lambda: collection_kube.request("PUT", f"{LEASES}/gpu-mode", None, unconditional))
    assert (code, status["reason"]) == (422, "Invalid")
    assert status["message"] == ('leases.coordination.k8s.io "gpu-mode" is invalid: metadata.resourceVersion: '
                                 "Invalid value: 0x0: must be specified for an update")
    assert status["details"] == {"name": "gpu-mode", "group": "coordination.k8s.io", "kind": "leases", "causes": [
        {"reason": "FieldValueInvalid", "message": "Invalid value: 0x0: must be specified for an update",
         "field": "metadata.resourceVersion"}]}
    unconditional["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    updated = collection_kube.request("PUT", f"{LEASES}/gpu-mode", None, unconditional)
    assert updated["spec"]["holderIdentity"] == "switch-b"


def test_configmaps_do_allow_unconditional_updates_and_leases_are_created_by_put(collection_kube):
    cms = "/api/v1/namespaces/default/configmaps"
    collection_kube.request("POST", cms, None, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    replaced = collection_kube.request("PUT", f"{cms}/c", None, {"apiVersion": "v1", "kind": "ConfigMap",
                                                                 "metadata": {"name": "c"}, "data": {"a": "1"}})
    assert replaced["data"] == {"a": "1"}
    status, _text = collection_kube.call("PUT", f"{LEASES}/new-lease", None, lease("new-lease"))
    assert status == 201, "AllowCreateOnUpdate: a PUT to a missing Lease creates it"


@pytest.mark.parametrize("spec, field, message", [
    ({"renewTime": "2025-06-01T10:00:00Z"}, None,
     'Lease in version "v1" cannot be handled as a Lease: parsing time "2025-06-01T10:00:00Z" as '
     '"2006-01-02T15:04:05.000000Z07:00": cannot parse "Z" as ".000000"'),
    ({"acquireTime": "yesterday"}, None,
     'Lease in version "v1" cannot be handled as a Lease: parsing time "yesterday" as '
     '"2006-01-02T15:04:05.000000Z07:00": cannot parse "yesterday" as "2006"'),
    ({"leaseDurationSeconds": 0}, "spec.leaseDurationSeconds", "Invalid value: 0: must be greater than 0"),
    ({"leaseDurationSeconds": -5}, "spec.leaseDurationSeconds", "Invalid value: -5: must be greater than 0"),
    ({"leaseTransitions": -1}, "spec.leaseTransitions", "Invalid value: -1: must be greater than or equal to 0"),
])
def test_lease_fields(collection_kube, spec, field, message):
    code, status = refusal(lambda: collection_kube.request("POST", LEASES, [("dryRun", "All")], lease(**spec)))
    if field is None:
        assert (code, status["reason"], status["message"]) == (400, "BadRequest", message)
    else:
        assert (code, status["details"]["causes"]) == (422, [{"reason": "FieldValueInvalid", "field": field,
                                                              "message": message}])


def test_a_stale_resource_version_conflicts_on_put_patch_and_apply(collection_kube):
    cms = "/api/v1/namespaces/default/configmaps"
    first = collection_kube.request("POST", cms, None, {"apiVersion": "v1", "kind": "ConfigMap",
                                                        "metadata": {"name": "mode"}, "data": {"mode": "ml"}})
    stale = first["metadata"]["resourceVersion"]
    collection_kube.request("PATCH", f"{cms}/mode", None, {"data": {"mode": "r1"}}, "application/merge-patch+json")
    expected = f'Operation cannot be fulfilled on configmaps "mode": {STALE}'
    for method, body, content_type, query in [
        ("PUT", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mode", "resourceVersion": stale},
                 "data": {"mode": "off"}}, None, None),
        ("PATCH", {"metadata": {"resourceVersion": stale}, "data": {"mode": "off"}}, "application/merge-patch+json",
         None),
        ("PATCH", {"metadata": {"resourceVersion": stale}, "data": {"mode": "off"}},
         "application/strategic-merge-patch+json", None),
        ("PATCH", [{"op": "replace", "path": "/metadata/resourceVersion", "value": stale},
                   {"op": "replace", "path": "/data/mode", "value": "off"}], "application/json-patch+json", None),
        ("PATCH", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mode", "resourceVersion": stale},
                   "data": {"mode": "off"}}, "application/apply-patch+yaml", [("fieldManager", "switch"),
                                                                              ("force", "true")]),
    ]:
        code, status = refusal(lambda: collection_kube.request(method, f"{cms}/mode", query, body, content_type))
        assert (code, status["reason"], status["message"]) == (409, "Conflict", expected), (method, content_type)
    assert collection_kube.request("GET", f"{cms}/mode")["data"] == {"mode": "r1"}, "nothing was written"


def test_delete_preconditions_name_the_incarnation(kube_client):
    core = k8s.CoreV1Api(kube_client)
    old = core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    core.delete_namespaced_config_map("c", "default")
    new = core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    code, status = refusal(lambda: core.delete_namespaced_config_map(
        "c", "default", body=k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid=old.metadata.uid))))
    assert (code, status["message"]) == (409, f'Operation cannot be fulfilled on configmaps "c": Precondition '
                                              f"failed: UID in precondition: {old.metadata.uid}, UID in object "
                                              f"meta: {new.metadata.uid}")
    code, status = refusal(lambda: core.delete_namespaced_config_map(
        "c", "default", body=k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(resource_version="1"))))
    assert code == 409 and "Precondition failed: ResourceVersion in precondition: 1" in status["message"]
    core.delete_namespaced_config_map("c", "default", body=k8s.V1DeleteOptions(
        preconditions=k8s.V1Preconditions(uid=new.metadata.uid, resource_version=new.metadata.resource_version)))
    assert not core.list_namespaced_config_map("default", field_selector="metadata.name=c").items
