"""The router's objects: the Node read on a node with standby modes (the switcher's, for the router's account)."""

from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_router import manifests


def kinds(objects):
    return [(o["kind"], o["metadata"]["name"]) for o in objects]


def test_a_node_without_standby_gets_no_cluster_wide_object():
    objects = manifests.build("n1", "ml", ["vllm-a"], "vllm/vllm-openai:v0.8.5")
    assert kinds(objects) == [("ServiceAccount", "gpu-router-n1"), ("Role", "gpu-router-n1"),
                              ("RoleBinding", "gpu-router-n1"), ("ConfigMap", "gpu-router-n1"),
                              ("Deployment", "gpu-router-n1"), ("Service", "gpu-router"),
                              ("PodDisruptionBudget", "gpu-router-n1")]


def test_standby_lets_the_routers_account_read_its_own_node_only():
    objects = manifests.build("n1", "ml", ["vllm-a"], "vllm/vllm-openai:v0.8.5", standby=True)
    role, binding = objects[0], objects[1]
    assert (role["kind"], role["metadata"]["name"]) == ("ClusterRole", "gpu-router-n1")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "resourceNames": ["n1"], "verbs": ["get"]}]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "gpu-router-n1", "namespace": "ml"}]
    assert binding["roleRef"]["name"] == "gpu-router-n1"
    assert role["metadata"]["labels"]["app.kubernetes.io/name"] == "gpu-router"
    namespaced = [o for o in objects if o["kind"] == "Role"][0]
    assert {"apiGroups": [""], "resources": ["pods/proxy"], "verbs": ["create"]} in namespaced["rules"]


def test_a_new_code_version_changes_the_pod_template():
    one = manifests.build("n1", "ml", [], "img", code_version="lib-aaa+site-bbb")[4]
    two = manifests.build("n1", "ml", [], "img", code_version="lib-ccc+site-bbb")[4]
    annotations = one["spec"]["template"]["metadata"]["annotations"]
    assert annotations["baremetal.gpu/code-version"] == "lib-aaa+site-bbb"
    assert annotations != two["spec"]["template"]["metadata"]["annotations"]
