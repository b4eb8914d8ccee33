"""Patch formats of the fake API server: JSON merge, strategic merge, JSON patch."""

import pytest

from tests.harness.fake_kube.errors import ApiError
from tests.harness.fake_kube.patch import json_patch, merge_patch, strategic_merge_patch


def deployment():
    return {
        "metadata": {"name": "vllm", "labels": {"app": "vllm", "tier": "gpu"}, "finalizers": ["a"]},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"spec": {
                "containers": [
                    {"name": "vllm", "image": "vllm/vllm-openai:v0.8.5", "args": ["--a"],
                     "ports": [{"containerPort": 8000, "name": "http"}],
                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                     "volumeMounts": [{"name": "cache", "mountPath": "/root/.cache"}]},
                    {"name": "sidecar", "image": "busybox"},
                ],
                "volumes": [{"name": "cache", "hostPath": {"path": "/var/lib/vllm"}}],
            }},
        },
    }


def containers(obj):
    return obj["spec"]["template"]["spec"]["containers"]


def test_merge_patch_merges_maps_deletes_nulls_and_replaces_lists():
    original = deployment()
    patched = merge_patch(original, {"metadata": {"labels": {"tier": None, "new": "x"}},
                                     "spec": {"template": {"spec": {"containers": [{"name": "only"}]}}}})
    assert patched["metadata"]["labels"] == {"app": "vllm", "new": "x"}
    assert containers(patched) == [{"name": "only"}]
    assert containers(original)[0]["name"] == "vllm", "input must not be mutated"


def test_strategic_merge_merges_containers_by_name_and_nested_lists_by_their_keys():
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "vllm", "image": "vllm/vllm-openai:v0.9.0",
         "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
         "ports": [{"containerPort": 8000, "protocol": "TCP"}],
         "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}]},
    ]}}}}
    patched = strategic_merge_patch(deployment(), patch)
    vllm, sidecar = containers(patched)
    assert sidecar == {"name": "sidecar", "image": "busybox"}
    assert vllm["image"] == "vllm/vllm-openai:v0.9.0"
    assert vllm["args"] == ["--a"]
    assert vllm["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "20"}, {"name": "C", "value": "3"}]
    assert vllm["ports"] == [{"containerPort": 8000, "name": "http", "protocol": "TCP"}]
    assert [m["mountPath"] for m in vllm["volumeMounts"]] == ["/root/.cache", "/dev/shm"]


def test_strategic_merge_patch_delete_directive_and_atomic_lists():
    patch = {"spec": {"template": {"spec": {
        "containers": [{"name": "sidecar", "$patch": "delete"}, {"name": "vllm", "args": ["--b"]}],
        "volumes": [{"name": "cache", "$patch": "delete"}],
    }}}}
    patched = strategic_merge_patch(deployment(), patch)
    assert [c["name"] for c in containers(patched)] == ["vllm"]
    assert containers(patched)[0]["args"] == ["--b"], "args has no merge key: replaced"
    assert patched["spec"]["template"]["spec"]["volumes"] == []


def test_strategic_merge_retain_keys_drops_rolling_update_when_switching_to_recreate():
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert strategic_merge_patch(deployment(), patch)["spec"]["strategy"] == {"type": "Recreate"}


def test_strategic_merge_replace_directives_order_and_primitive_list_deletion():
    patched = strategic_merge_patch(deployment(), {
        "metadata": {"labels": {"$patch": "replace", "only": "this"},
                     "$deleteFromPrimitiveList/finalizers": ["a"]},
        "spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "vllm"}],
                                       "containers": [{"name": "vllm", "image": "x"}]}}},
    })
    assert patched["metadata"]["labels"] == {"only": "this"}
    assert patched["metadata"]["finalizers"] == []
    assert [c["name"] for c in containers(patched)] == ["sidecar", "vllm"]
    replaced = strategic_merge_patch(deployment(), {"spec": {"template": {"spec": {
        "containers": [{"$patch": "replace"}, {"name": "new", "image": "y"}]}}}})
    assert containers(replaced) == [{"name": "new", "image": "y"}]


def test_strategic_merge_unions_finalizers_and_rejects_items_without_merge_key():
    patched = strategic_merge_patch(deployment(), {"metadata": {"finalizers": ["b", "a"]}})
    assert patched["metadata"]["finalizers"] == ["a", "b"]
    with pytest.raises(ApiError) as err:
        strategic_merge_patch(deployment(), {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}})
    assert err.value.code == 400


def test_json_patch_operations():
    ops = [
        {"op": "replace", "path": "/spec/replicas", "value": 0},
        {"op": "add", "path": "/metadata/labels/app.kubernetes.io~1name", "value": "vllm"},
        {"op": "remove", "path": "/metadata/labels/tier"},
        {"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "--b"},
        {"op": "copy", "from": "/metadata/name", "path": "/metadata/annotations"},
        {"op": "move", "from": "/metadata/annotations", "path": "/metadata/generateName"},
        {"op": "test", "path": "/spec/replicas", "value": 0},
    ]
    patched = json_patch(deployment(), ops)
    assert patched["spec"]["replicas"] == 0
    assert patched["metadata"]["labels"] == {"app": "vllm", "app.kubernetes.io/name": "vllm"}
    assert containers(patched)[0]["args"] == ["--a", "--b"]
    assert patched["metadata"]["generateName"] == "vllm" and "annotations" not in patched["metadata"]


@pytest.mark.parametrize("ops, code", [
    ([{"op": "test", "path": "/spec/replicas", "value": 3}], 422),
    ([{"op": "remove", "path": "/spec/missing"}], 422),
    ([{"op": "replace", "path": "/metadata/nothere", "value": 1}], 422),
    ([{"op": "frobnicate", "path": "/spec"}], 422),
    ({"op": "add"}, 400),
])
def test_json_patch_failures_are_api_errors(ops, code):
    with pytest.raises(ApiError) as err:
        json_patch(deployment(), ops)
    assert err.value.code == code
    assert err.value.body["kind"] == "Status" and err.value.body["code"] == code
