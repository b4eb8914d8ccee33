"""A simulated GPU node with the router running in the cluster, for the router's tests and benchmark.

The home lab (inventories/homelab: modes ml (default), r1 and off; both models behind Service vllm-api) on the
fake API with the kubelet simulator, fake vLLM servers taking their share of the node's GPU memory ledger, the
node activated to ml by the `gpu-mode` command "on" the node. The router is deployed from
``gpu_router.manifests`` (the role's objects) and runs as the pod's own process (programs/python_module.py):
its code is the collection's module_utils put on the node's filesystem where the gpu_mode role unpacks it
(its bundle, byte for byte), its credentials the pod's ServiceAccount token, its NVML the node's.
"""

import json
import os
import pathlib
import sys
import time

from ansible_collections.baremetal.gpu.plugins.module_utils import kube as k8s
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import modes
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_router import manifests as router_manifests
from tests.harness.gpu_mode_node import Node, inventory_manifests
from tests.harness.kubelet import KubeletSimulator, NodeSpec

ROOT = pathlib.Path(__file__).resolve().parents[2]
NODE = "k3s-gpu-worker"
NS = "ml"
IMAGE = "vllm/vllm-openai:v0.8.5.post1"
ML_MODEL, R1_MODEL = "Qwen/Qwen3-8B-AWQ", "casperhansen/deepseek-r1-distill-qwen-7b-awq"


def bundle_files():
    """What the gpu_mode role unpacks on a node (its bundle's members: the collection's module_utils)."""
    sys.path.insert(0, str(ROOT / "roles" / "gpu_mode" / "files"))
    try:
        import gpu_mode_bundle  # pylint: disable=import-outside-toplevel
    finally:
        sys.path.pop(0)
    return gpu_mode_bundle.members(str(ROOT / "plugins" / "module_utils"))


def site_files():
    """What the gpu_router role installs into its site directory (the distributions of its
    gpu_router_site_packages), taken from this test environment, where the same pins are installed. The role
    itself is run by tests/integration/test_gpu_router_role.py."""
    from importlib import metadata  # pylint: disable=import-outside-toplevel

    import yaml  # pylint: disable=import-outside-toplevel

    defaults = yaml.safe_load((ROOT / "roles" / "gpu_router" / "defaults" / "main.yml").read_text())
    out = {}
    for name in defaults["gpu_router_site_packages"]:
        dist = metadata.distribution(name)
        for entry in dist.files or []:
            rel = str(entry)
            if rel.startswith("..") or "__pycache__" in rel:
                continue
            out[rel] = pathlib.Path(dist.locate_file(entry)).read_bytes()
    return out


def install_code(sim, node=NODE, options=None):
    """Put the router's code on the node's filesystem where the roles do (gpu_mode's lib, gpu_router's site)."""
    opts = dict(router_manifests.DEFAULTS, **(options or {}))
    host = sim.agents[node].host
    for base, files in ((opts["code_dir"], bundle_files()), (opts["site_dir"], site_files())):
        host.makedirs(base)
        for name, data in files.items():
            path = base + "/" + name
            host.makedirs(os.path.dirname(path))
            host.files[path] = data


class RouterCluster:
    def __init__(self, sim, kube, node):
        self.sim, self.kube, self.node = sim, kube, node

    def router_objects(self, settings=None, **options):
        book = modes.book_from_configmap(self.kube.get("v1", "ConfigMap", modes.configmap_name(NODE), NS))
        return router_manifests.build(NODE, NS, modes.bound_deployments(book), IMAGE, settings, **options)

    def deploy_router(self, settings=None, timeout=60, **options):
        objects = self.router_objects(settings, **options)
        k8s.apply_all(self.kube, objects)
        return self.wait_routers(int(options.get("replicas", router_manifests.DEFAULTS["replicas"])), timeout)

    def router_pods(self):
        return self.kube.items("v1", "Pod", NS, label_selector="app.kubernetes.io/name=gpu-router")

    def wait_routers(self, count, timeout=60):
        """The real URLs of ``count`` ready router pods (what a port-forward to each would reach)."""
        deadline = time.monotonic() + timeout
        while True:
            pods = [p for p in self.router_pods() if not p["metadata"].get("deletionTimestamp") and any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in (p.get("status") or {}).get("conditions") or [])]
            if len(pods) >= count:
                return [self.url_of(p) for p in sorted(pods, key=lambda p: p["metadata"]["name"])][:count]
            if time.monotonic() > deadline:
                logs = {p["metadata"]["name"]: self.logs(p["metadata"]["name"]) for p in self.router_pods()}
                raise AssertionError("router pods not ready: %s\n%s" % (
                    json.dumps([p.get("status") for p in self.router_pods()])[:3000], json.dumps(logs)[-4000:]))
            time.sleep(0.05)  # harness only: waiting for the simulated rollout from outside the cluster

    def url_of(self, pod):
        api = self.sim.ctx.client  # the pod network map the API server keeps
        del api
        return self._pod_url(pod["status"]["podIP"], router_manifests.DEFAULTS["port"])

    def _pod_url(self, ip, port):
        answer = self.kube.request("GET", "/fake/v1/podnetwork/%s/%d" % (ip, port))
        return answer["url"]

    def logs(self, pod):
        try:
            return self.kube.logs(NS, pod, tail=200)
        except k8s.KubeError as exc:
            return [str(exc)]

    def model_pod_url(self, deployment):
        (pod,) = [p for p in self.kube.items("v1", "Pod", NS, label_selector="app.kubernetes.io/instance=" + deployment)
                  if not p["metadata"].get("deletionTimestamp")]
        return self._pod_url(pod["status"]["podIP"], 8000)

    def replicas(self):
        return dict((d["metadata"]["name"], d["spec"].get("replicas"))
                    for d in self.kube.items("apps/v1", "Deployment", NS) if d["metadata"]["name"] in ("vllm-ml", "vllm-r1"))

    def recorded(self):
        data = self.kube.get("v1", "ConfigMap", modes.configmap_name(NODE), NS)["data"]
        return data.get("mode"), json.loads(data.get("history.json") or "[]")


def start_cluster(kube_api, collection_kube, kubeconfig, fake_nvml_lib, tmp_path, scale, vllm_overrides=None,
                  load_seconds=20, shutdown_seconds=2):
    """(simulator, RouterCluster) with ml active and serving; the caller enters the simulator's context."""
    sim = KubeletSimulator(kube_api.url, nodes=[NodeSpec(name=NODE)], time_scale=scale,
                           state_dir=tmp_path / "cluster", vllm_load_seconds=load_seconds,
                           vllm_shutdown_seconds=shutdown_seconds, vllm_overrides=vllm_overrides)
    sim.start()
    try:
        k8s.apply_all(collection_kube, inventory_manifests("homelab"))
        node = Node(sim, collection_kube, kubeconfig, fake_nvml_lib, tmp_path, NODE, NS)
        result, _err = node.switch("ml")
        assert result["outcome"] == "switched", result
        install_code(sim)
    except BaseException:
        sim.stop()
        raise
    return sim, RouterCluster(sim, collection_kube, node)
