"""A simulated home-lab cluster ready for GPU mode switches, for the gpu_mode role's tests.

The home lab's catalog (inventories/homelab, image pre-pull off) rendered once by the vllm role's own
``render`` entry point and applied as the role applies it (server-side apply, field manager ``baremetal-gpu``:
the mode-bound Deployments created at 0 replicas, the node's modes in ConfigMap ``gpu-mode-k3s-gpu-worker``),
on the fake API with the kubelet simulator (probe periods, termination grace, the NVIDIA device plugin, at
time scale SCALE) running a fake vLLM behind every model server pod, which takes its share of the node's GPU
memory ledger. Each node's ledger is exported for the fake NVML library and as a /proc tree (``gpu_export``),
so a `gpu-mode` process "on" the node sees the same GPU memory. Beside it, a second GPU node ``worker2``
with its own mode-bound Deployment and ConfigMap, so that tests can show one node's credentials are useless on
another node's objects.
"""

import copy
import functools
import json

from tests.harness.kubelet import LOGIC_TEST_TIME_SCALE, KubeletSimulator, NodeSpec
from tests.harness.role_render import render

NODE = "k3s-gpu-worker"
OTHER_NODE = "worker2"
NAMESPACE = "ml"
OTHER_DEPLOYMENT = "vllm-other"
SCALE = LOGIC_TEST_TIME_SCALE  # a 1 s probe period lasts 50 ms, the 4 s model load 0.2 s


@functools.lru_cache(maxsize=None)
def homelab_manifests():
    """The home lab's manifests (a JSON string: every caller gets its own copy)."""
    rendered = render("homelab", {"gpu_node_name": NODE, "vllm_prepull": False})
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


def simulator(api_url, state_dir, crashing_models=()):
    """Controllers, scheduler and kubelets of the two GPU nodes (one RTX 3060 12 GB each), a fake vLLM behind
    every model server pod (4 s to load, 1 s to shut down, simulated); the servers of ``crashing_models`` exit
    with vLLM's error while they load (a model that cannot start)."""

    def overrides(ctx):
        return {"crash_during_load": True} if any(model in ctx.argv for model in crashing_models) else {}

    return KubeletSimulator(api_url, nodes=[NodeSpec(name=NODE), NodeSpec(name=OTHER_NODE)], time_scale=SCALE,
                            state_dir=state_dir, vllm_load_seconds=4, vllm_shutdown_seconds=1,
                            vllm_overrides=overrides)


def gpu_export(sim, node=NODE):
    """Where the simulator exports a node's GPU ledger: ``nvml.txt`` (the fake NVML library's data) and ``proc/``."""
    return sim.node_state_dir(node) / "gpu"


def node_env(sim, fake_nvml_lib, node=NODE):
    """The environment of a process "on" the node: NVML is the stand-in library reading the node's ledger."""
    return {"LD_LIBRARY_PATH": str(fake_nvml_lib), "FAKE_NVML_DATA": str(gpu_export(sim, node) / "nvml.txt")}


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
