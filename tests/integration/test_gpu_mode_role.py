"""The whole gpu_mode role on a GPU node, against the simulated home lab: the node is a local-connection host
whose every path the role writes is under a temporary directory (and no OS package is installed), so the
role runs for real here: the node's access, the wheels (pip download into the controller's cache when it
lacks them, as molecule does), the virtualenv built offline, the packed code, the command, its settings,
then activation with the virtualenv's Python, the fake NVML library reading the simulated node's GPU ledger.

The sequence of issue "site.yml end to end": a fresh cluster gets the node's default mode; a second run
changes nothing; after a switch to r1 (with the installed command), a third run changes nothing and r1 keeps
running."""

import json
import os
import re
import subprocess

import pytest
import yaml

from tests.harness import gpu_mode_cluster as world
from tests.harness.ansible_cli import ansible_playbook, kube_env
from tests.harness.gpu_mode_cluster import NAMESPACE, NODE

pytestmark = pytest.mark.slow

PLAY = """---
- name: The gpu_mode role on the GPU nodes
  hosts: gpu_nodes
  gather_facts: false
  roles:
    - role: baremetal.gpu.gpu_mode
"""


@pytest.fixture
def node(kube_api, collection_kube, kubeconfig, tmp_path, fake_nvml_lib):
    with world.simulator(kube_api.url, tmp_path / "cluster") as sim:
        world.apply_homelab(collection_kube)
        root = tmp_path / "node"
        host = {
            "ansible_connection": "local",
            "ansible_python_interpreter": "/usr/bin/python3",
            "gpu_mode_cluster_kubeconfig": kubeconfig,
            "gpu_mode_prefix": str(root / "opt"),
            "gpu_mode_cli_path": str(root / "bin" / "gpu-mode"),
            "gpu_mode_config_file": str(root / "etc" / "gpu-mode.json"),
            "gpu_mode_node_kubeconfig": str(root / "etc" / "gpu-mode.kubeconfig"),
            "gpu_mode_os_packages": [],
            "gpu_mode_become": False,
            "gpu_mode_start_timeout": 60,
            "gpu_mode_health_timeout": 30,
            "gpu_mode_proc_root": str(world.gpu_export(sim) / "proc"),
            "gpu_mode_switch_environment": world.node_env(sim, fake_nvml_lib),
            "vllm_namespace": NAMESPACE,
        }
        (root / "bin").mkdir(parents=True)
        inventory = tmp_path / "hosts.yml"
        inventory.write_text(yaml.safe_dump({"all": {"children": {"gpu_nodes": {"hosts": {NODE: host}}}}}))
        play = tmp_path / "gpu_mode.yml"
        play.write_text(PLAY)
        yield {"inventory": inventory, "play": play, "root": root,
               "env": dict(kube_env(kubeconfig), **world.node_env(sim, fake_nvml_lib))}
    assert not sim.errors, sim.errors


def run_role(node):
    run = ansible_playbook(node["play"], inventory=node["inventory"], env=kube_env(node["env"]["KUBECONFIG"]),
                           timeout=600, check=False)
    out = " ".join((run.stdout + run.stderr).split())
    assert run.returncode == 0, out[-4000:]
    match = re.search(r"%s : ok=\d+ changed=(\d+) unreachable=0 failed=0" % NODE, out)
    assert match, out[-3000:]
    return int(match.group(1)), out


def active(kube):
    replicas = dict((d["metadata"]["name"], d["spec"]["replicas"]) for d in kube.items("apps/v1", "Deployment", NAMESPACE))
    return (kube.get("v1", "ConfigMap", "gpu-mode-" + NODE, NAMESPACE)["data"].get("mode"),
            replicas["vllm-ml"], replicas["vllm-r1"])


def test_install_activates_the_default_mode_and_later_runs_never_undo_a_switch(node, collection_kube):
    changed, out = run_role(node)
    assert changed > 0
    assert "node k3s-gpu-worker: (none) -> ml switched in" in out
    assert active(collection_kube) == ("ml", 1, 0)
    root = node["root"]
    settings = json.loads((root / "etc" / "gpu-mode.json").read_text())
    assert settings["node"] == NODE and settings["kubeconfig"] == str(root / "etc" / "gpu-mode.kubeconfig")
    assert (root / "etc" / "gpu-mode.kubeconfig").stat().st_mode & 0o777 == 0o600
    token = json.loads((root / "etc" / "gpu-mode.kubeconfig").read_text())["users"][0]["user"]["token"]
    assert token not in out

    changed, out = run_role(node)
    assert changed == 0, out[-4000:]
    assert "node k3s-gpu-worker is already in mode ml and serving: nothing to do" in out

    cli = subprocess.run([str(root / "bin" / "gpu-mode"), "r1"], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, **node["env"]), check=False)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "node k3s-gpu-worker: ml -> r1 switched in" in cli.stdout
    assert active(collection_kube) == ("r1", 0, 1)

    changed, out = run_role(node)
    assert changed == 0, out[-4000:]
    assert "node k3s-gpu-worker is already in mode r1 and serving: nothing to do" in out
    assert active(collection_kube) == ("r1", 0, 1)
