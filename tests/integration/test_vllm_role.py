"""The vllm role run by ansible-playbook against the fake Kubernetes API and kubelet simulator, with
the home-lab inventory's catalog: deploy (mode-bound workloads created at 0, their modes in the cluster),
leave a switch's replicas alone, stay idempotent, never print the token, and refuse a catalog with a
mistyped key or conflicting entries before touching the cluster."""

import copy
import pathlib
import re

import pytest
import yaml

from tests.harness.ansible_cli import ansible_playbook, kube_env
from tests.harness.kubelet import LOGIC_TEST_TIME_SCALE, KubeletSimulator, NodeSpec

ROOT = pathlib.Path(__file__).resolve().parents[2]
# the home lab's group_vars, for the default inventory's one GPU node (localhost) named as the worker; its
# kubeconfig variables (the k3s server's, copied by site.yml) left out: these tests give the simulated cluster's
# through the environment, as kubernetes.core's K8S_AUTH_KUBECONFIG
HOMELAB_VARS = yaml.safe_load((ROOT / "inventories" / "homelab" / "group_vars" / "all.yml").read_text())
HOMELAB = dict(((k, v) for k, v in HOMELAB_VARS.items() if not k.endswith("kubeconfig")),
               gpu_node_name="k3s-gpu-worker")
TOKEN = "hf_RoleSecretToken0042"
TOKEN_B64 = "aGZfUm9sZVNlY3JldFRva2VuMDA0Mg=="
PLAY = """---
- name: Deploy the model catalog
  hosts: localhost
  gather_facts: false
  roles:
    - role: baremetal.gpu.vllm
"""

pytestmark = pytest.mark.slow


@pytest.fixture
def playbook(tmp_path):
    path = tmp_path / "vllm.yml"
    path.write_text(PLAY)
    return path


@pytest.fixture
def cluster(kube_api, collection_kube):
    with KubeletSimulator(kube_api.url, nodes=[NodeSpec(name="k3s-gpu-worker")], time_scale=LOGIC_TEST_TIME_SCALE,
                          vllm_load_seconds=4) as sim:
        yield collection_kube
    assert not sim.errors, sim.errors


def recap(output):
    match = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", output)
    assert match, output[-3000:]
    return {"ok": int(match.group(1)), "changed": int(match.group(2)), "failed": int(match.group(3))}


def replicas(kube):
    items = kube.items("apps/v1", "Deployment", "ml")
    return {d["metadata"]["name"]: d["spec"]["replicas"] for d in items}


def test_role_deploys_never_undoes_a_switch_and_stays_idempotent(cluster, kubeconfig, playbook):
    env = kube_env(kubeconfig)
    first = ansible_playbook(playbook, "-v", "--diff", extra_vars=dict(HOMELAB, vllm_hf_token=TOKEN), env=env)
    out = first.stdout + first.stderr
    assert recap(out)["changed"] >= 1
    assert "item=vllm-ml" not in out and "item=vllm-r1" not in out  # nothing mode-bound runs before a switch
    assert TOKEN not in out and TOKEN_B64 not in out
    assert replicas(cluster) == {"vllm-ml": 0, "vllm-r1": 0}
    assert cluster.get("v1", "Secret", "vllm-hf-token", "ml") is not None
    modes = cluster.get("v1", "ConfigMap", "gpu-mode-k3s-gpu-worker", "ml")
    assert '"default": "ml"' in modes["data"]["modes.json"]

    # a switch to r1 (the switcher's field manager owns replicas of mode-bound Deployments)
    cluster.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "vllm-r1", "namespace": "ml"},
                   "spec": {"replicas": 1}}, field_manager="baremetal-gpu-mode", force=True)
    again = ansible_playbook(playbook, "--diff", extra_vars=dict(HOMELAB, vllm_hf_token=TOKEN), env=env)
    assert recap(again.stdout)["changed"] == 0, again.stdout[-3000:]
    assert replicas(cluster) == {"vllm-ml": 0, "vllm-r1": 1}


def test_a_mistyped_catalog_key_or_a_conflict_fails_before_touching_the_cluster(playbook, tmp_path):
    env = kube_env(tmp_path / "no-such-kubeconfig")
    typo = copy.deepcopy(HOMELAB)
    typo["vllm_catalog"][0]["max_model_lenght"] = 8192
    run = ansible_playbook(playbook, extra_vars=typo, env=env, check=False)
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "max_model_lenght" in out and "Validating arguments against arg spec" in out

    conflict = copy.deepcopy(HOMELAB)
    conflict["gpu_modes"]["ml"]["workloads"] = ["ml", "r1"]
    run = ansible_playbook(playbook, extra_vars=conflict, env=env, check=False)
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "Service vllm-api would route to ml and r1 at the same time, which serve different models" in out
