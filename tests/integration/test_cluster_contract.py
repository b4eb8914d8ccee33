"""The API behaviour this collection relies on, asserted the same way on the fake API and on a real cluster.

Every test runs against the fake API server. With ``BAREMETAL_GPU_REAL_CLUSTER=1`` and ``KUBECONFIG`` set,
each also runs against that cluster (marker ``real_cluster``), in a namespace of its own that is deleted
afterwards: what passes on the fake and fails on the real cluster is a fidelity bug of the fake.

    BAREMETAL_GPU_REAL_CLUSTER=1 KUBECONFIG=~/.kube/config ./scripts/test pytest -m real_cluster
"""

import os
import threading
import uuid

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from ansible_collections.baremetal.gpu.plugins.module_utils.kube import Kube, KubeError

REAL = os.environ.get("BAREMETAL_GPU_REAL_CLUSTER") == "1" and bool(os.environ.get("KUBECONFIG"))
MANAGER = "baremetal-gpu"


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.real_cluster)])
def api(request, tmp_path):
    """An ApiClient and a fresh namespace on the fake API server or on $KUBECONFIG's cluster."""
    if request.param == "fake":
        kube_api = request.getfixturevalue("kube_api")
        kubeconfig = kube_api.write_kubeconfig(str(tmp_path / "kubeconfig"))
    elif REAL:
        kubeconfig = os.environ["KUBECONFIG"]
    else:
        pytest.skip("opt-in: set BAREMETAL_GPU_REAL_CLUSTER=1 and KUBECONFIG to run against a real cluster")
    api_client = config.new_client_from_config(config_file=kubeconfig)
    namespace = "bmgpu-contract-" + uuid.uuid4().hex[:8]
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": namespace}})
    try:
        yield api_client, namespace
    finally:
        core.delete_namespace(namespace)
        api_client.close()


def deployment(name, replicas=0, image="vllm/vllm-openai:v0.8.5.post1", args=("--model", "a")):
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": MANAGER}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": "vllm", "image": image, "args": list(args)}]}},
        },
    }


def server_side_apply(api_client, namespace, body, manager=MANAGER, force=False):
    """Apply as the collection's modules do (module_utils/kube.py: PATCH application/apply-patch+yaml)."""
    return Kube(api_client).apply(dict(body, metadata=dict(body["metadata"], namespace=namespace)),
                                  field_manager=manager, force=force)


def test_server_side_apply_creates_then_changes_nothing_then_rolls_a_new_generation(api):
    api_client, namespace = api
    created = server_side_apply(api_client, namespace, deployment("chat"))
    assert created["metadata"]["generation"] == 1
    again = server_side_apply(api_client, namespace, deployment("chat"))
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    changed = server_side_apply(api_client, namespace, deployment("chat", args=("--model", "b")))
    assert changed["metadata"]["generation"] == 2
    assert int(changed["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    managers = {entry["manager"] for entry in changed["metadata"]["managedFields"]}
    assert MANAGER in managers


def test_a_field_owned_by_another_manager_conflicts_unless_forced(api):
    api_client, namespace = api
    server_side_apply(api_client, namespace, deployment("chat"))
    with pytest.raises(KubeError) as err:
        server_side_apply(api_client, namespace, deployment("chat", image="vllm/vllm-openai:v0.9.0"), manager="other")
    assert err.value.status == 409 and err.value.reason == "Conflict"
    forced = server_side_apply(api_client, namespace, deployment("chat", image="vllm/vllm-openai:v0.9.0"),
                               manager="other", force=True)
    assert forced["spec"]["template"]["spec"]["containers"][0]["image"] == "vllm/vllm-openai:v0.9.0"


def test_scale_subresource_and_label_selected_lists(api):
    api_client, namespace = api
    apps = client.AppsV1Api(api_client)
    for name in ("chat", "reasoning"):
        server_side_apply(api_client, namespace, deployment(name))
    apps.patch_namespaced_deployment_scale("chat", namespace, {"spec": {"replicas": 0}})
    scale = apps.read_namespaced_deployment_scale("chat", namespace)
    assert scale.kind == "Scale" and scale.spec.replicas == 0
    listed = apps.list_namespaced_deployment(namespace, label_selector="app.kubernetes.io/name in (chat)")
    assert [d.metadata.name for d in listed.items] == ["chat"]
    listed = apps.list_namespaced_deployment(namespace, label_selector=f"app.kubernetes.io/managed-by={MANAGER}")
    assert sorted(d.metadata.name for d in listed.items) == ["chat", "reasoning"]


def test_watch_streams_changes_after_a_resource_version(api):
    api_client, namespace = api
    core = client.CoreV1Api(api_client)
    start = core.list_namespaced_config_map(namespace).metadata.resource_version
    seen = []

    def follow():
        stream = watch.Watch()
        for event in stream.stream(core.list_namespaced_config_map, namespace, resource_version=start,
                                   timeout_seconds=10, field_selector="metadata.name=gpu-mode"):
            seen.append((event["type"], (event["object"].data or {}).get("mode")))
            if event["type"] == "DELETED":
                stream.stop()

    follower = threading.Thread(target=follow)
    follower.start()
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "gpu-mode"}, "data": {"mode": "ml"}})
    core.patch_namespaced_config_map("gpu-mode", namespace, {"data": {"mode": "r1"}})
    core.delete_namespaced_config_map("gpu-mode", namespace)
    follower.join(15)
    assert seen == [("ADDED", "ml"), ("MODIFIED", "r1"), ("DELETED", "r1")]


def test_leases_give_optimistic_concurrency_and_real_status_bodies(api):
    api_client, namespace = api
    leases = client.CoordinationV1Api(api_client)
    body = {"metadata": {"name": "gpu-mode"}, "spec": {"holderIdentity": "switch-a", "leaseDurationSeconds": 60}}
    lease = leases.create_namespaced_lease(namespace, body)
    with pytest.raises(ApiException) as exists:
        leases.create_namespaced_lease(namespace, body)
    assert exists.value.status == 409 and '"reason":"AlreadyExists"' in exists.value.body.replace(" ", "")
    lease.spec.holder_identity = "switch-b"
    leases.replace_namespaced_lease("gpu-mode", namespace, lease)
    lease.spec.holder_identity = "switch-c"  # still carries the old resourceVersion
    with pytest.raises(ApiException) as stale:
        leases.replace_namespaced_lease("gpu-mode", namespace, lease)
    assert stale.value.status == 409 and '"reason":"Conflict"' in stale.value.body.replace(" ", "")
    with pytest.raises(ApiException) as missing:
        leases.read_namespaced_lease("nothing-here", namespace)
    assert missing.value.status == 404 and '"kind":"Status"' in missing.value.body.replace(" ", "")
    with pytest.raises(ApiException) as invalid:
        leases.create_namespaced_lease(namespace, {"metadata": {"name": "Not_A_DNS_Name"}, "spec": {}})
    assert invalid.value.status == 422 and '"reason":"Invalid"' in invalid.value.body.replace(" ", "")


def test_a_lease_update_needs_a_resource_version(api):
    api_client, namespace = api
    # plain JSON: the typed client turns a MicroTime into a datetime and prints it without its zero microseconds
    Kube(api_client).request("POST", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases", body={
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "gpu-mode"},
        "spec": {"holderIdentity": "switch-a", "leaseDurationSeconds": 60,
                 "renewTime": "2025-06-01T10:00:00.000000Z"}})
    unconditional = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "gpu-mode"},
                     "spec": {"holderIdentity": "switch-b", "leaseDurationSeconds": 60}}
    with pytest.raises(KubeError) as err:
        Kube(api_client).request("PUT", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/gpu-mode",
                                 body=unconditional)
    assert err.value.status == 422 and err.value.body["message"] == (
        'leases.coordination.k8s.io "gpu-mode" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be '
        "specified for an update")
    not_micro = dict(unconditional, spec={"renewTime": "2025-06-01T10:00:00Z"})
    with pytest.raises(KubeError) as err:
        Kube(api_client).request("POST", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases",
                                 body=dict(not_micro, metadata={"name": "other"}))
    assert err.value.status == 400 and 'cannot parse "Z" as ".000000"' in err.value.body["message"]


def test_a_stale_resource_version_conflicts_on_patch_and_apply(api):
    api_client, namespace = api
    kube = Kube(api_client)
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    first = kube.request("POST", path, body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mode"},
                                             "data": {"mode": "ml"}})
    stale = first["metadata"]["resourceVersion"]
    kube.request("PATCH", f"{path}/mode", body={"data": {"mode": "r1"}}, content_type="application/merge-patch+json")
    conflict = ("Operation cannot be fulfilled on configmaps \"mode\": the object has been modified; please apply "
                "your changes to the latest version and try again")
    with pytest.raises(KubeError) as err:
        kube.request("PATCH", f"{path}/mode", body={"metadata": {"resourceVersion": stale}, "data": {"mode": "x"}},
                     content_type="application/merge-patch+json")
    assert (err.value.status, err.value.body["message"]) == (409, conflict)
    with pytest.raises(KubeError) as err:
        kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "data": {"mode": "x"},
                    "metadata": {"name": "mode", "namespace": namespace, "resourceVersion": stale}},
                   field_manager=MANAGER, force=True)
    assert (err.value.status, err.value.body["message"]) == (409, conflict)


def test_a_watch_from_before_the_watch_cache_is_410_gone(api):
    api_client, namespace = api
    core = client.CoreV1Api(api_client)
    with pytest.raises(ApiException) as err:
        for _event in watch.Watch().stream(core.list_namespaced_config_map, namespace, resource_version="1",
                                           timeout_seconds=5):
            pass
    assert err.value.status == 410 and "too old resource version: 1 (" in str(err.value.reason)


def test_unauthenticated_and_unauthorized_requests(api):
    api_client, namespace = api
    base = api_client.configuration
    anonymous = client.Configuration()
    anonymous.host, anonymous.ssl_ca_cert, anonymous.verify_ssl = base.host, base.ssl_ca_cert, base.verify_ssl
    anonymous.api_key = {"authorization": "Bearer not-a-token"}
    with client.ApiClient(anonymous) as bad:
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(bad).list_namespaced_pod(namespace)
        assert err.value.status == 401 and '"message":"Unauthorized"' in err.value.body.replace(" ", "")
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "router"}})
    token = core.create_namespaced_service_account_token("router", namespace, {"spec": {}}).status.token
    as_router = client.Configuration()
    as_router.host, as_router.ssl_ca_cert, as_router.verify_ssl = base.host, base.ssl_ca_cert, base.verify_ssl
    as_router.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(as_router) as router:
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(router).list_namespaced_secret(namespace)
        body = err.value.body
        assert err.value.status == 403
        assert (f'secrets is forbidden: User \\"system:serviceaccount:{namespace}:router\\" cannot list resource '
                f'\\"secrets\\" in API group \\"\\" in the namespace \\"{namespace}\\"') in body
