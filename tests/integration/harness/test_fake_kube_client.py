"""The fake API server through the real `kubernetes` Python client, unchanged.

Fixtures (kube_api, kube_client, kubelet, ...) come from tests/harness/kube_fixtures.py via tests/conftest.py.
"""

import json
import threading

import pytest
from kubernetes import client as k8s, watch
from kubernetes.client.exceptions import ApiException


APPLY = "application/apply-patch+yaml"


def deployment(name="vllm", labels=None, replicas=1, image="vllm/vllm-openai:v0.8.5.post1"):
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "vllm", "image": image}]}}}}


def status_of(err: ApiException) -> dict:
    body = json.loads(err.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == err.status
    return body


def test_crud_across_kinds(kube_client):
    core, apps = k8s.CoreV1Api(kube_client), k8s.AppsV1Api(kube_client)
    coordination = k8s.CoordinationV1Api(kube_client)
    core.create_namespace({"metadata": {"name": "ml"}})
    assert core.read_namespace("ml").status.phase == "Active"
    assert core.read_namespaced_service_account("default", "ml").metadata.name == "default"

    cm = core.create_namespaced_config_map("ml", {"metadata": {"name": "catalog"}, "data": {"a": "1"}})
    assert cm.metadata.uid and cm.metadata.creation_timestamp and int(cm.metadata.resource_version) > 0
    cm.data["b"] = "2"
    replaced = core.replace_namespaced_config_map("catalog", "ml", cm)
    assert replaced.data == {"a": "1", "b": "2"}
    assert int(replaced.metadata.resource_version) > int(cm.metadata.resource_version)

    secret = core.create_namespaced_secret("ml", {"metadata": {"name": "hf"}, "stringData": {"token": "abc"}})
    assert secret.data == {"token": "YWJj"} and secret.type == "Opaque" and secret.string_data is None

    svc = core.create_namespaced_service("ml", {"metadata": {"name": "vllm-api"}, "spec": {
        "selector": {"app": "vllm"}, "ports": [{"port": 8000, "name": "http"}]}})
    assert svc.spec.cluster_ip.startswith("10.43.") and svc.spec.ports[0].target_port == 8000

    lease = coordination.create_namespaced_lease("ml", {"metadata": {"name": "gpu-mode"},
                                                        "spec": {"holderIdentity": "switch-1"}})
    assert lease.spec.holder_identity == "switch-1"

    dep = apps.create_namespaced_deployment("ml", deployment())
    assert dep.spec.strategy.type == "RollingUpdate" and dep.spec.revision_history_limit == 10
    assert dep.metadata.generation == 1
    assert [d.metadata.name for d in apps.list_namespaced_deployment("ml").items] == ["vllm"]

    apps.delete_namespaced_deployment("vllm", "ml")
    core.delete_namespaced_config_map("catalog", "ml")
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("catalog", "ml")
    assert err.value.status == 404


def test_errors_are_real_status_objects(kube_client):
    core, apps = k8s.CoreV1Api(kube_client), k8s.AppsV1Api(kube_client)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("nope", "default")
    body = status_of(err.value)
    assert (err.value.status, body["reason"], body["message"]) == (404, "NotFound", 'pods "nope" not found')
    assert body["details"] == {"name": "nope", "kind": "pods"}

    core.create_namespaced_config_map("default", {"metadata": {"name": "x"}})
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("default", {"metadata": {"name": "x"}})
    assert (err.value.status, status_of(err.value)["reason"]) == (409, "AlreadyExists")

    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("default", {"metadata": {"name": "Bad_Name"}})
    body = status_of(err.value)
    assert (err.value.status, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "metadata.name"

    broken = deployment()
    broken["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(ApiException) as err:
        apps.create_namespaced_deployment("default", broken)
    body = status_of(err.value)
    assert err.value.status == 422
    assert body["message"].startswith('Deployment.apps "vllm" is invalid: spec.template.metadata.labels')
    assert "`selector` does not match template `labels`" in body["message"]

    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("missing-ns", {"metadata": {"name": "x"}})
    assert err.value.status == 404 and status_of(err.value)["message"] == 'namespaces "missing-ns" not found'


def test_list_with_label_and_field_selectors(kube_client):
    core = k8s.CoreV1Api(kube_client)
    core.create_namespace({"metadata": {"name": "other"}})
    for ns, name, labels in [("default", "a", {"app": "vllm", "mode": "ml"}),
                             ("default", "b", {"app": "vllm", "mode": "r1"}),
                             ("other", "c", {"app": "asr"})]:
        core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": labels}})

    def names(result):
        return sorted(i.metadata.name for i in result.items)

    assert names(core.list_namespaced_config_map("default", label_selector="app=vllm")) == ["a", "b"]
    assert names(core.list_namespaced_config_map("default", label_selector="mode in (r1),app")) == ["b"]
    assert names(core.list_namespaced_config_map("default", label_selector="mode!=ml,app")) == ["b"]
    assert names(core.list_namespaced_config_map("default", field_selector="metadata.name=a")) == ["a"]
    everywhere = core.list_config_map_for_all_namespaces(label_selector="app")
    assert names(everywhere) == ["a", "b", "c"]
    assert int(everywhere.metadata.resource_version) > 0
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map("default", label_selector="app in (")
    assert err.value.status == 400


def test_watch_from_resource_version_sees_changes_in_order(kube_client):
    core = k8s.CoreV1Api(kube_client)
    core.create_namespaced_config_map("default", {"metadata": {"name": "before"}})
    start_rv = core.list_namespaced_config_map("default").metadata.resource_version
    seen = []
    opened = threading.Event()

    def consume():
        stream = watch.Watch()
        opened.set()
        for event in stream.stream(core.list_namespaced_config_map, "default", resource_version=start_rv,
                                   timeout_seconds=5):
            seen.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                stream.stop()

    thread = threading.Thread(target=consume)
    thread.start()
    opened.wait(2)
    core.create_namespaced_config_map("default", {"metadata": {"name": "w"}, "data": {"v": "1"}})
    core.patch_namespaced_config_map("w", "default", {"data": {"v": "2"}})
    core.delete_namespaced_config_map("w", "default")
    thread.join(5)
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


def test_replace_with_stale_resource_version_conflicts(kube_client):
    core = k8s.CoreV1Api(kube_client)
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "c"}, "data": {"v": "0"}})
    first = core.read_namespaced_config_map("c", "default")
    first.data = {"v": "1"}
    core.replace_namespaced_config_map("c", "default", first)
    cm.data = {"v": "stale"}
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("c", "default", cm)
    body = status_of(err.value)
    assert (err.value.status, body["reason"]) == (409, "Conflict")
    assert "the object has been modified" in body["message"]


def test_patch_variants(kube_client):
    apps = k8s.AppsV1Api(kube_client)
    dep = deployment()
    dep["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "busybox"})
    apps.create_namespaced_deployment("default", dep)
    strategic = apps.patch_namespaced_deployment("vllm", "default", {"spec": {"template": {"spec": {
        "containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.9.0"}]}}}})
    assert [c.name for c in strategic.spec.template.spec.containers] == ["vllm", "sidecar"]
    assert strategic.spec.template.spec.containers[0].image == "vllm/vllm-openai:v0.9.0"
    merged = apps.patch_namespaced_deployment("vllm", "default", {"metadata": {"labels": {"mode": "ml"}}},
                                              _content_type="application/merge-patch+json")
    assert merged.metadata.labels == {"app": "vllm", "mode": "ml"}
    jsonpatched = apps.patch_namespaced_deployment("vllm", "default", [
        {"op": "replace", "path": "/spec/replicas", "value": 0}])
    assert jsonpatched.spec.replicas == 0
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("vllm", "default", [{"op": "test", "path": "/spec/replicas", "value": 5}])
    assert err.value.status == 422


def test_server_side_apply_create_idempotence_conflict_and_force(kube_client):
    apps = k8s.AppsV1Api(kube_client)
    created = apps.patch_namespaced_deployment("vllm", "default", deployment(replicas=1), field_manager="gpu-mode",
                                               _content_type=APPLY)
    assert created.spec.replicas == 1
    assert [(m.manager, m.operation) for m in created.metadata.managed_fields] == [("gpu-mode", "Apply")]
    again = apps.patch_namespaced_deployment("vllm", "default", deployment(replicas=1), field_manager="gpu-mode",
                                             _content_type=APPLY)
    assert again.metadata.resource_version == created.metadata.resource_version
    assert again.metadata.generation == 1

    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("vllm", "default", deployment(replicas=0), field_manager="someone-else",
                                         _content_type=APPLY)
    body = status_of(err.value)
    assert (err.value.status, body["reason"]) == (409, "Conflict")
    assert body["details"]["causes"] == [{"reason": "FieldManagerConflict", "field": ".spec.replicas",
                                          "message": 'conflict with "gpu-mode" using apps/v1'}]

    forced = apps.patch_namespaced_deployment("vllm", "default", deployment(replicas=0), field_manager="someone-else",
                                              force=True, _content_type=APPLY)
    assert forced.spec.replicas == 0 and forced.metadata.generation == 2
    assert {m.manager for m in forced.metadata.managed_fields} == {"gpu-mode", "someone-else"}

    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("vllm", "default", deployment(), _content_type=APPLY)
    assert err.value.status == 422 and "fieldManager" in status_of(err.value)["message"]


def test_generation_and_status_subresource(kube_client):
    apps = k8s.AppsV1Api(kube_client)
    dep = apps.create_namespaced_deployment("default", deployment())
    labelled = apps.patch_namespaced_deployment("vllm", "default", {"metadata": {"labels": {"x": "y"}}})
    assert labelled.metadata.generation == 1, "metadata-only change keeps the generation"
    ignored = apps.patch_namespaced_deployment("vllm", "default", {"status": {"replicas": 5}})
    assert ignored.status is None or ignored.status.replicas is None, "main resource ignores status"
    status = apps.patch_namespaced_deployment_status("vllm", "default", {"status": {
        "observedGeneration": 1, "replicas": 1}, "spec": {"replicas": 9}})
    assert status.status.replicas == 1 and status.spec.replicas == 1, "status writes change only status"
    assert status.metadata.generation == 1
    bumped = apps.patch_namespaced_deployment("vllm", "default", {"spec": {"replicas": 2}})
    assert bumped.metadata.generation == 2 and bumped.status.observed_generation == 1
    assert int(bumped.metadata.resource_version) > int(dep.metadata.resource_version)


def test_scale_subresource(kube_client):
    apps = k8s.AppsV1Api(kube_client)
    apps.create_namespaced_deployment("default", deployment(replicas=1))
    scale = apps.read_namespaced_deployment_scale("vllm", "default")
    assert (scale.spec.replicas, scale.status.selector) == (1, "app=vllm")
    scaled = apps.patch_namespaced_deployment_scale("vllm", "default", {"spec": {"replicas": 0}})
    assert scaled.spec.replicas == 0
    assert apps.read_namespaced_deployment("vllm", "default").spec.replicas == 0
    scale = apps.read_namespaced_deployment_scale("vllm", "default")
    scale.spec.replicas = 3
    assert apps.replace_namespaced_deployment_scale("vllm", "default", scale).spec.replicas == 3


def test_graceful_pod_deletion_and_garbage_collection_left_to_the_controller_manager(kube_api, kube_client):
    core, apps = k8s.CoreV1Api(kube_client), k8s.AppsV1Api(kube_client)
    kube_api.add_node("worker", gpus=1)  # a node whose kubelet never answers
    owner = apps.create_namespaced_deployment("default", deployment())
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vllm", "uid": owner.metadata.uid,
           "controller": True, "blockOwnerDeletion": True}
    pod = {"metadata": {"name": "p", "ownerReferences": [ref], "labels": {"app": "vllm"}},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    core.create_namespaced_pod("default", pod)
    core.create_namespaced_pod_binding("p", "default", {"metadata": {"name": "p"},
                                                        "target": {"kind": "Node", "name": "worker"}},
                                       _preload_content=False)
    assert core.read_namespaced_pod("p", "default").spec.node_name == "worker"

    apps.delete_namespaced_deployment("vllm", "default")  # Background, the default: the owner goes at once
    with pytest.raises(ApiException):
        apps.read_namespaced_deployment("vllm", "default")
    orphaned = core.read_namespaced_pod("p", "default")
    assert orphaned.metadata.deletion_timestamp is None, "dependents are the garbage collector's, not the API's"
    assert orphaned.metadata.owner_references[0].uid == owner.metadata.uid

    core.delete_namespaced_pod("p", "default")
    terminating = core.read_namespaced_pod("p", "default")
    assert terminating.metadata.deletion_timestamp is not None, "a bound pod waits for its kubelet"
    assert terminating.metadata.deletion_grace_period_seconds == 30
    core.delete_namespaced_pod("p", "default", grace_period_seconds=0)
    with pytest.raises(ApiException):
        core.read_namespaced_pod("p", "default")


def test_namespace_deletion_removes_its_content(kube_client):
    core = k8s.CoreV1Api(kube_client)
    core.create_namespace({"metadata": {"name": "gone"}})
    core.create_namespaced_config_map("gone", {"metadata": {"name": "x"}})
    terminating = core.delete_namespace("gone")  # answered with the Namespace, phase Terminating
    assert terminating["status"]["phase"] == "Terminating"
    with pytest.raises(ApiException) as err:
        core.read_namespace("gone")
    assert err.value.status == 404
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("x", "gone")


def test_delete_collection_with_selector(kube_client):
    core = k8s.CoreV1Api(kube_client)
    for name, mode in [("a", "ml"), ("b", "ml"), ("c", "r1")]:
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": {"mode": mode}}})
    core.delete_collection_namespaced_config_map("default", label_selector="mode=ml")
    remaining = core.list_namespaced_config_map("default", label_selector="mode").items
    assert [c.metadata.name for c in remaining] == ["c"]
