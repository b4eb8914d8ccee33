"""A simulated home-lab cluster ready for GPU mode switches, for the gpu_mode role's tests.

The home lab's catalog (inventories/homelab) rendered once by the vllm role's own ``render`` entry point and
applied as the role applies it (server-side apply, field manager ``baremetal-gpu``: the mode-bound
Deployments created at 0 replicas, the node's modes in ConfigMap ``gpu-mode-k3s-gpu-worker``), on the fake
API with the kubelet simulator running a fake vLLM behind every model server pod. Beside it, a second GPU
node ``worker2`` with its own mode-bound Deployment and ConfigMap, so that tests can show one node's
credentials are useless on another node's objects.
"""

import copy
import functools
import json

from tests.harness.kubelet_sim import Delays, KubeletSimulator, NodeSpec, fake_vllm_factory
from tests.harness.role_render import render

NODE = "k3s-gpu-worker"
OTHER_NODE = "worker2"
NAMESPACE = "ml"
OTHER_DEPLOYMENT = "vllm-other"


@functools.lru_cache(maxsize=None)
def homelab_manifests():
    """The home lab's manifests (a JSON string: every caller gets its own copy)."""
    rendered = render("homelab", {"gpu_node_name": NODE})
    return json.dumps(rendered.manifests)


def worker2_objects(manifests):
    """A second GPU node's mode-bound Deployment (the r1 server, renamed and pinned to worker2) and its modes."""
    (r1,) = [m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == "vllm-r1"]
    other = copy.deepcopy(r1)
    other["metadata"]["name"] = OTHER_DEPLOYMENT
    other["metadata"]["annotations"]["baremetal.gpu/node"] = OTHER_NODE
    other["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": OTHER_NODE}
    book = {"node": OTHER_NODE, "namespace": NAMESPACE, "default": "other",
            "modes": {"other": {"description": "worker2's own model", "workloads": {OTHER_DEPLOYMENT: 1}},
                      "off": {"description": "no model", "workloads": {}}}}
    configmap = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "gpu-mode-" + OTHER_NODE, "namespace": NAMESPACE},
                 "data": {"modes.json": json.dumps(book)}}
    return [other, configmap]


def apply_homelab(kube, with_other_node=True):
    """Apply the home lab (and worker2's objects) as the vllm role would; returns the manifests applied."""
    from ansible_collections.baremetal.gpu.plugins.module_utils import kube_apply

    manifests = json.loads(homelab_manifests())
    if with_other_node:
        manifests += worker2_objects(manifests)
    kube_apply.apply_all(kube, manifests, field_manager="baremetal-gpu", default_namespace=NAMESPACE)
    return manifests


def simulator(api_url, load_seconds=0.1, crashing_models=()):
    """Controllers, scheduler and kubelets of the two GPU nodes, a fake vLLM behind every model server; the
    servers of ``crashing_models`` exit with vLLM's error while they load (a model that cannot start)."""
    healthy = fake_vllm_factory(load_seconds=load_seconds)
    crashing = fake_vllm_factory(load_seconds=load_seconds, crash_during_load=True)

    def factory(pod):
        args = pod["spec"]["containers"][0].get("args") or []
        return (crashing if any(model in args for model in crashing_models) else healthy)(pod)

    return KubeletSimulator(api_url, nodes=[NodeSpec(name=NODE), NodeSpec(name=OTHER_NODE)], delays=Delays(),
                            vllm_factory=factory)


class Denials:
    """Every request the fake API's RBAC refused, as ``(user, verb, resource, namespace, name)``: wraps the
    server's authorizer (the server still refuses; this only remembers)."""

    def __init__(self, api):
        self.refused = []
        check = api.authorizer.check

        def recording(user, attrs):
            try:
                check(user, attrs)
            except Exception:
                resource = attrs.resource + ("/" + attrs.subresource if attrs.subresource else "")
                self.refused.append((user.name, attrs.verb, resource or attrs.path, attrs.namespace, attrs.name))
                raise

        api.authorizer.check = recording

    def of(self, user):
        return [r for r in self.refused if r[0] == user]
