"""Who owns spec.replicas of a mode-bound Deployment: the GPU mode switcher's field manager, never the vllm
role's. Against the fake API's server-side apply (managed fields, as a real API server keeps them)."""

import copy

from ansible_collections.baremetal.gpu.plugins.module_utils import kube as k8s

ROLE = "baremetal-gpu"
SWITCHER = "baremetal-gpu-mode"


def deployment(replicas=None, image="vllm/vllm-openai:v0.8.5.post1"):
    obj = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "vllm-r1", "namespace": "default",
                        "annotations": {"baremetal.gpu/replicas-manager": SWITCHER}},
           "spec": {"selector": {"matchLabels": {"app": "r1"}},
                    "template": {"metadata": {"labels": {"app": "r1"}},
                                 "spec": {"containers": [{"name": "vllm", "image": image}]}}}}
    if replicas is not None:
        obj["spec"]["replicas"] = replicas
    return obj


def live(kube):
    return kube.get("apps/v1", "Deployment", "vllm-r1", "default")


def scale_as_switcher(kube, replicas):
    kube.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "vllm-r1", "namespace": "default"},
                "spec": {"replicas": replicas}}, field_manager=SWITCHER, force=True)


def test_a_new_mode_bound_deployment_starts_at_zero_and_the_role_never_undoes_a_switch(collection_kube):
    results = k8s.apply_all(collection_kube, [deployment()], field_manager=ROLE)[0]
    assert results[0]["action"] == "created"
    assert live(collection_kube)["spec"]["replicas"] == 0  # not the API's default of 1: nothing starts by itself
    assert k8s.owns_replicas(live(collection_kube), SWITCHER) and not k8s.owns_replicas(live(collection_kube), ROLE)

    scale_as_switcher(collection_kube, 1)  # gpu-mode r1
    results = k8s.apply_all(collection_kube, [deployment()], field_manager=ROLE)[0]  # site.yml again
    assert results[0]["action"] == "unchanged"
    assert live(collection_kube)["spec"]["replicas"] == 1

    results = k8s.apply_all(collection_kube, [deployment(image="vllm/vllm-openai:v0.9.0")], field_manager=ROLE)[0]
    assert results[0]["action"] == "configured"  # a new image rolls out; the switch's replicas stay
    assert live(collection_kube)["spec"]["replicas"] == 1


def test_replicas_an_older_role_applied_are_handed_over_at_their_value(collection_kube):
    old = copy.deepcopy(deployment(replicas=1))
    del old["metadata"]["annotations"]
    k8s.apply_all(collection_kube, [old], field_manager=ROLE)  # what the role did before it left replicas out
    assert k8s.owns_replicas(live(collection_kube), ROLE)
    results = k8s.apply_all(collection_kube, [deployment()], field_manager=ROLE)[0]
    assert live(collection_kube)["spec"]["replicas"] == 1  # left out of the apply, yet not reset
    assert k8s.owns_replicas(live(collection_kube), SWITCHER) and not k8s.owns_replicas(live(collection_kube), ROLE)
    assert k8s.apply_all(collection_kube, [deployment()], field_manager=ROLE)[0][0]["action"] == "unchanged"
