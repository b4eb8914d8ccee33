"""The nvidia_device_plugin role run by ansible-playbook against the fake Kubernetes API and the kubelet
simulator: deploys, reports what each GPU node advertises, a second run changes nothing, and bad input
fails before the cluster is touched."""

import re

import pytest

from tests.harness.ansible_cli import ansible_playbook, kube_env
from tests.harness.kubelet import LOGIC_TEST_TIME_SCALE, KubeletSimulator, NodeSpec

PLAY = """---
- name: Deploy the NVIDIA device plugin
  hosts: localhost
  gather_facts: false
  roles:
    - role: baremetal.gpu.nvidia_device_plugin
"""

pytestmark = pytest.mark.slow


@pytest.fixture
def playbook(tmp_path):
    path = tmp_path / "device-plugin.yml"
    path.write_text(PLAY)
    return path


def recap(output):
    match = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", output)
    assert match, output[-3000:]
    return {"ok": int(match.group(1)), "changed": int(match.group(2)), "failed": int(match.group(3))}


def test_role_deploys_reports_the_gpus_and_stays_idempotent(kube_api, collection_kube, kubeconfig, playbook):
    variables = {"nvidia_device_plugin_nodes": ["k3s-gpu-worker"], "nvidia_device_plugin_wait_timeout": 60,
                 "nvidia_device_plugin_configs": {"t4-ts2": {"replicas": 2}}}
    with KubeletSimulator(kube_api.url, nodes=[NodeSpec(name="k3s-gpu-worker")], time_scale=LOGIC_TEST_TIME_SCALE,
                          device_plugin=False) as sim:
        first = ansible_playbook(playbook, extra_vars=variables, env=kube_env(kubeconfig))
        out = first.stdout + first.stderr
        assert recap(out)["changed"] == 1
        assert "k3s-gpu-worker: 1 nvidia.com/gpu (1 GPU(s) x 1, configuration default)" in out
        again = ansible_playbook(playbook, extra_vars=variables, env=kube_env(kubeconfig))
        assert recap(again.stdout) == {"ok": 3, "changed": 0, "failed": 0}
    assert not sim.errors, sim.errors
    data = collection_kube.get("v1", "ConfigMap", "nvidia-device-plugin-configs", "kube-system")["data"]
    assert sorted(data) == ["default", "t4-ts2"]


def test_bad_input_fails_before_touching_the_cluster(kube_api, collection_kube, kubeconfig, playbook):
    runtime_classes = collection_kube.items("node.k8s.io/v1", "RuntimeClass")
    run = ansible_playbook(playbook, extra_vars={"nvidia_device_plugin_configs": {"t4-ts2": {"replicas": 0}}},
                           env=kube_env(kubeconfig), check=False)
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "configuration t4-ts2: time-slicing replicas must be 1 (no sharing) or more, got 0" in out
    assert collection_kube.items("apps/v1", "DaemonSet", "kube-system") == []
    assert collection_kube.items("node.k8s.io/v1", "RuntimeClass") == runtime_classes
