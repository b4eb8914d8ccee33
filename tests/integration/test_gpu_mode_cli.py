"""The node's `gpu-mode` command as the gpu_mode role installs it: the role's wrapper (templates/gpu-mode.j2)
over the packed module_utils (files/gpu_mode_bundle.py), with the settings file and the node's own
kubeconfig, run as a separate process against the simulated home lab. On this machine there is no GPU:
status and list must still work and say why GPU memory is unknown; "on" the simulated node (the fake NVML
library reading the node's GPU memory ledger, /proc its export), the command switches and shows each model
server's GPU memory."""

import json
import os
import pathlib
import subprocess
import sys
import tarfile

import jinja2
import pytest

from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import access
from tests.harness import gpu_mode_cluster as world
from tests.harness.gpu_mode_cluster import NAMESPACE, NODE

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "gpu_mode"


@pytest.fixture
def installed(kube_api, collection_kube, tmp_path):
    """The command laid out as the role lays it out, under tmp_path (prefix, lib, settings, kubeconfig)."""
    with world.simulator(kube_api.url, tmp_path / "cluster") as sim:
        world.apply_homelab(collection_kube)
        prefix = tmp_path / "opt"
        subprocess.run([sys.executable, str(ROLE / "files" / "gpu_mode_bundle.py"), "--collection-module-utils",
                        str(ROOT / "plugins" / "module_utils"), "--dest", str(tmp_path / "lib.tar.gz")],
                       check=True, capture_output=True)
        with tarfile.open(tmp_path / "lib.tar.gz") as tar:
            tar.extractall(prefix / "lib", filter="data")
        kubeconfig = tmp_path / "gpu-mode.kubeconfig"
        kubeconfig.write_text(access.ensure(collection_kube, NODE, NAMESPACE, kube_api.url)["kubeconfig"])
        kubeconfig.chmod(0o600)
        config = tmp_path / "gpu-mode.json"
        config.write_text(json.dumps({"node": NODE, "namespace": NAMESPACE, "kubeconfig": str(kubeconfig),
                                      "proc_root": str(world.gpu_export(sim) / "proc")}))
        wrapper = tmp_path / "gpu-mode"
        wrapper.write_text(jinja2.Template((ROLE / "templates" / "gpu-mode.j2").read_text()).render(
            gpu_mode_prefix=str(prefix), gpu_mode_config_file=str(config), ansible_managed="Ansible managed"))
        yield wrapper, sim
    assert not sim.errors, sim.errors


def gpu_mode(wrapper, *args, env=None):
    run = subprocess.run([sys.executable, "-I", str(wrapper), *args], capture_output=True, text=True, timeout=120, check=False,
                         env=dict(os.environ, **(env or {})))
    return run.returncode, run.stdout, run.stderr


def test_without_a_gpu_status_and_list_work_and_say_why_gpu_memory_is_unknown(installed):
    installed, _sim = installed
    rc, out, err = gpu_mode(installed, "--help")
    assert rc == 0 and "exit codes:" in out and "4  the switch failed AND its rollback failed" in out
    rc, out, err = gpu_mode(installed, "status")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == "node k3s-gpu-worker  mode (none recorded)"
    assert any(line.split()[:4] == ["vllm-ml", "stopped", "0/0", "ready"] for line in lines), out
    assert any(line.startswith("GPU memory: unavailable here (") for line in lines), out
    rc, out, err = gpu_mode(installed, "list")
    assert rc == 0, err
    assert [line.split()[0] for line in out.splitlines() if line and not line.startswith(" ")] == [
        "MODE", "ml", "off", "r1"]
    assert "no NVIDIA driver on the node" in out  # the fit verdict of a mode on a node without a driver
    rc, out, err = gpu_mode(installed, "turbo")
    assert rc == 2 and "unknown mode 'turbo' for node k3s-gpu-worker; valid modes: ml (default)" in err
    rc, out, err = gpu_mode(installed, "ml", "--dry-run")
    assert rc == 2 and "mode ml does not fit node k3s-gpu-worker" in err


def test_on_the_node_it_switches_and_status_shows_each_servers_gpu_memory(installed, tmp_path, fake_nvml_lib):
    installed, sim = installed
    env = world.node_env(sim, fake_nvml_lib)
    rc, out, err = gpu_mode(installed, "ml", env=env)
    assert rc == 0, out + err
    assert "validate" in out and "release" in out and "node k3s-gpu-worker: (none) -> ml switched in" in out
    rc, out, err = gpu_mode(installed, "status", env=env)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == "node k3s-gpu-worker  mode ml (default)"
    (process,) = sim.ledger(NODE).processes(0)  # the ml server, as the node's GPU ledger has it
    assert any(line.split()[:2] == ["pid", str(process.pid)] and line.split()[-1].startswith("ml/vllm-ml-")
               for line in lines), out
    rc, out, err = gpu_mode(installed, "status", "--kubeconfig", str(tmp_path / "missing.kubeconfig"))
    assert rc == 5 and "cannot reach the cluster" in err
