"""`site.yml --check` reports what would change and changes nothing: inventories/local (the simulated home lab,
as ./scripts/try sets it up) against a fresh simulated cluster."""

import os
import re

import pytest

from ansible_collections.baremetal.gpu.plugins.module_utils.kube import Kube
from tests.harness import fake_cluster, fake_nvml
from tests.harness.ansible_cli import ROOT, ansible_playbook, kube_env

pytestmark = pytest.mark.slow


@pytest.fixture
def simulated_home_lab(tmp_path):
    """What ./scripts/try prepares: the fake NVML library, the cluster, the node's directories."""
    kubeconfig = tmp_path / "kubeconfig"
    state = tmp_path / "state"
    (tmp_path / "fake-nvml").mkdir()
    fake_nvml.build(tmp_path / "fake-nvml")
    fake_cluster.up(fake_cluster.ClusterConfig(kubeconfig=str(kubeconfig), nodes=[{"name": "k3s-gpu-worker"}],
                                               time_scale=0.05), root=str(state))
    try:
        (status,) = fake_cluster.status(str(kubeconfig), root=str(state))
        os.symlink(status.nodes[0]["gpu_state_dir"], tmp_path / "gpu")
        (tmp_path / "node" / "usr" / "local" / "bin").mkdir(parents=True)
        yield {"env": dict(kube_env(kubeconfig), BAREMETAL_GPU_LOCAL_SIM=str(tmp_path)), "kubeconfig": kubeconfig,
               "dir": tmp_path}
    finally:
        fake_cluster.down(str(kubeconfig), root=str(state))


def test_check_mode_reports_changes_and_changes_nothing(simulated_home_lab):
    world = simulated_home_lab
    run = ansible_playbook(ROOT / "site.yml", "--check", inventory=ROOT / "inventories" / "local", env=world["env"],
                           check=False, timeout=600)
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    changed = dict((host, int(n)) for host, n in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", run.stdout, re.M))
    assert changed["localhost"] > 0, changed  # the catalog's objects would be created
    text = " ".join(run.stdout.split())
    # the switcher's access needs the node's modes in the cluster, which only a real run's vllm stage stores
    assert ("check mode: the modes of k3s-gpu-worker reach the cluster in the vllm stage of a real run (ConfigMap "
            "ml/gpu-mode-k3s-gpu-worker); the gpu_mode stage would then give the node its access, install gpu-mode "
            "and activate mode ml.") in text
    kube = Kube.from_params({"kubeconfig": str(world["kubeconfig"])})
    try:
        assert kube.items("apps/v1", "Deployment", "ml") == []
        assert kube.items("v1", "ConfigMap", "ml") == []
    finally:
        kube.close()
    assert not (world["dir"] / "node" / "opt").exists()  # nothing installed "on the node"
