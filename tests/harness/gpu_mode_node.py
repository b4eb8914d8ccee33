"""A simulated GPU node as the switcher sees it: ``gpu-mode`` runs as its own process "on" the node (NVML is the
stand-in library reading that node's GPU memory ledger, /proc is the ledger's export), against the fake API
server and the kubelet simulator. Used by the gpu-mode scenario tests and benchmarks."""

import json
import os
import pathlib
import subprocess
import sys

import yaml

from ansible_collections.baremetal.gpu.plugins.module_utils import kube as k8s
from tests.harness.role_render import INVENTORIES, render

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLI = "import sys; sys.path[:0] = ['.', '.collections']\n" \
      "from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.cli import main\nsys.exit(main())\n"


class Node:
    """The simulated GPU node ``name``: runs `gpu-mode` as its own process with the node's NVML and /proc."""

    def __init__(self, sim, kube, kubeconfig, fake_nvml_lib, tmp_path, name, namespace):
        self.sim, self.kube, self.name, self.namespace = sim, kube, name, namespace
        state = sim.node_state_dir(name) / "gpu"  # where the simulator exports the node's GPU ledger
        self.config = pathlib.Path(tmp_path) / ("gpu-mode-%s.json" % name)
        self.config.write_text(json.dumps({"node": name, "namespace": namespace, "kubeconfig": str(kubeconfig),
                                           "proc_root": str(state / "proc")}))
        self.env = dict(os.environ, LD_LIBRARY_PATH=str(fake_nvml_lib), FAKE_NVML_DATA=str(state / "nvml.txt"),
                        GPU_MODE_CONFIG=str(self.config))

    def start(self, *args):
        return subprocess.Popen([sys.executable, "-c", CLI, *args], cwd=ROOT, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def run(self, *args, timeout=120):
        proc = self.start(*args)
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err

    def switch(self, mode, *args, expect=0, timeout=120):
        code, out, err = self.run(mode, "--json", *args, timeout=timeout)
        assert code == expect, "exit %s\n%s\n%s" % (code, out[-4000:], err[-4000:])
        return json.loads(out) if out.strip() else {}, err

    def replicas(self):
        return dict((d["metadata"]["name"], d["spec"].get("replicas"))
                    for d in self.kube.items("apps/v1", "Deployment", self.namespace))

    def recorded(self):
        data = self.kube.get("v1", "ConfigMap", "gpu-mode-" + self.name, self.namespace)["data"]
        return data.get("mode"), json.loads(data.get("history.json") or "[]")

    def serves(self, service="vllm-api", port=8000):
        """The model names the Service answers with, through the API server's proxy (what its clients see),
        or None when nothing answers."""
        try:
            body = self.kube.request("GET", "/api/v1/namespaces/%s/services/%s:%d/proxy/v1/models"
                                     % (self.namespace, service, port), timeout=5)
        except k8s.KubeError:
            return None
        return [m["id"] for m in (body or {}).get("data", [])]

    def pods(self, deployment):
        return self.kube.items("v1", "Pod", self.namespace,
                               label_selector="app.kubernetes.io/instance=%s" % deployment)

    def ledger(self):
        return self.sim.ledger(self.name)


def inventory_manifests(inventory, **catalog_changes):
    """The vllm role's manifests for one of role_render's INVENTORIES, with catalog entries changed
    (``ml={"gpu_memory_utilization": 0.4}``) and no image pre-pull DaemonSets."""
    catalog = yaml.safe_load((INVENTORIES[inventory] / "group_vars" / "all.yml").read_text())["vllm_catalog"]
    catalog = [dict(entry, **catalog_changes.get(entry["name"], {})) for entry in catalog]
    return render(inventory, {"vllm_catalog": catalog, "vllm_prepull": False}).manifests


def marked(request, name):
    """The keyword arguments of a test's ``name`` mark (``@pytest.mark.catalog(ml={...})``), or {}."""
    marker = request.node.get_closest_marker(name)
    return dict(marker.kwargs) if marker else {}
