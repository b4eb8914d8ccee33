"""`ansible-playbook gpu-mode.yml` as users run it, against the simulated home-lab cluster: the GPU node is a
local-connection host whose switch runs with the node's own kubeconfig (its least-privilege ServiceAccount),
the Python of this venv, and the fake NVML library reading the simulated node's GPU memory ledger (GPU facts
for the fit check, and the wait until the stopped server's memory is really released).

Refusals first (no mode, a bad name, an unknown mode: clear errors, nothing changed), then check mode (the
plan printed, nothing changed), then real switches with the summary, and a no-op; last, benchmarks/fleet.py in a tiny
configuration (its figures line)."""

import re
import subprocess
import sys

import pytest
import yaml

from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import access
from tests.harness import gpu_mode_cluster as world
from tests.harness.ansible_cli import ROOT, ansible_playbook
from tests.harness.gpu_mode_cluster import NAMESPACE, NODE, OTHER_NODE

pytestmark = pytest.mark.slow


@pytest.fixture
def sim(kube_api, collection_kube, tmp_path):
    with world.simulator(kube_api.url, tmp_path / "cluster") as simulator:
        world.apply_homelab(collection_kube)
        yield simulator
    assert not simulator.errors, simulator.errors


@pytest.fixture
def cluster(sim, collection_kube):
    return collection_kube


def node_host(kube, node, tmp_path, sim, fake_nvml_lib):
    """A GPU node as a local-connection host with the kubeconfig the gpu_mode role would have written."""
    node_kubeconfig = tmp_path / ("%s.kubeconfig" % node)
    node_kubeconfig.write_text(access.ensure(kube, node, NAMESPACE, kube.api.configuration.host)["kubeconfig"])
    node_kubeconfig.chmod(0o600)
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "gpu_mode_python_interpreter": "{{ ansible_playbook_python }}",
        "gpu_mode_node_kubeconfig": str(node_kubeconfig),
        "gpu_mode_become": False,
        "gpu_mode_start_timeout": 60,
        "gpu_mode_health_timeout": 30,
        "gpu_mode_release_timeout": 10,
        "gpu_mode_proc_root": str(world.gpu_export(sim, node) / "proc"),
        "gpu_mode_switch_environment": world.node_env(sim, fake_nvml_lib, node),
        "vllm_namespace": NAMESPACE,
    }


def write_inventory(path, hosts):
    path.write_text(yaml.safe_dump({"all": {"children": {"gpu_nodes": {"hosts": hosts}}}}))
    return path


@pytest.fixture
def inventory(cluster, sim, tmp_path, fake_nvml_lib):
    return write_inventory(tmp_path / "hosts.yml", {NODE: node_host(cluster, NODE, tmp_path, sim, fake_nvml_lib)})


def gpu_mode(inventory, *args, mode=None):
    extra = {"mode": mode} if mode is not None else None
    run = ansible_playbook(ROOT / "gpu-mode.yml", *args, inventory=inventory, extra_vars=extra, check=False)
    # one space between words: the YAML callback wraps long messages anywhere
    return run.returncode, " ".join((run.stdout + run.stderr).split())


def recap(output, host=NODE):
    match = re.search(r"%s : ok=(\d+) changed=(\d+) unreachable=\d+ failed=(\d+)" % host, output)
    assert match, output[-3000:]
    return {"ok": int(match.group(1)), "changed": int(match.group(2)), "failed": int(match.group(3))}


def untouched(kube):
    """Nothing a switch would change has changed: nothing scaled, no lock taken, no mode recorded."""
    replicas = dict((d["metadata"]["name"], d["spec"]["replicas"]) for d in kube.items("apps/v1", "Deployment", NAMESPACE)
                    if d["metadata"]["name"] in ("vllm-ml", "vllm-r1"))
    configmap = kube.get("v1", "ConfigMap", "gpu-mode-" + NODE, NAMESPACE)
    return (replicas == {"vllm-ml": 0, "vllm-r1": 0}
            and kube.get("coordination.k8s.io/v1", "Lease", "gpu-mode-" + NODE, NAMESPACE) is None
            and "mode" not in configmap["data"])


def test_refusals_are_clear_and_change_nothing(inventory, cluster):
    rc, out = gpu_mode(inventory)
    assert rc != 0
    assert "No mode given: pass -e mode=NAME" in out and "gpu-mode list" in out

    rc, out = gpu_mode(inventory, mode="R1; reboot")
    assert rc != 0
    assert 'Mode "R1; reboot" is not a mode name (lower case letters, digits and -)' in out

    rc, out = gpu_mode(inventory, mode="turbo")
    assert rc != 0
    assert ("unknown mode 'turbo' for node k3s-gpu-worker; valid modes: ml (default): Qwen/Qwen3-8B-AWQ, also as "
            "vllm-qwen; off: no model; the GPU is free for the machine's other GPU work; r1: "
            "casperhansen/deepseek-r1-distill-qwen-7b-awq, also as vllm-r1") in out
    assert "node k3s-gpu-worker: -> turbo invalid" in out  # the summary still names the node's outcome
    assert untouched(cluster)


def test_check_mode_prints_the_plan_and_changes_nothing(inventory, cluster):
    rc, out = gpu_mode(inventory, "--check", mode="ml")
    assert rc == 0, out[-3000:]
    assert "node k3s-gpu-worker: (none) -> ml (dry run: nothing changed)" in out
    assert "start: vllm-ml x1" in out and "expected load: about 70 s" in out
    assert untouched(cluster)


def test_switches_print_a_summary_and_a_repeat_changes_nothing(inventory, cluster):
    rc, out = gpu_mode(inventory, mode="ml")
    assert rc == 0, out[-3000:]
    assert re.search(r"node k3s-gpu-worker: \(none\) -> ml switched in [\d.]+ s \(", out), out[-3000:]
    rc, out = gpu_mode(inventory, mode="r1")
    assert rc == 0, out[-3000:]
    assert re.search(r"node k3s-gpu-worker: ml -> r1 switched in [\d.]+ s \(.*start [\d.]+", out), out[-3000:]
    replicas = dict((d["metadata"]["name"], d["spec"]["replicas"]) for d in cluster.items("apps/v1", "Deployment", NAMESPACE))
    assert (replicas["vllm-ml"], replicas["vllm-r1"]) == (0, 1)
    assert cluster.get("v1", "ConfigMap", "gpu-mode-" + NODE, NAMESPACE)["data"]["mode"] == "r1"
    rc, out = gpu_mode(inventory, mode="r1")
    assert rc == 0, out[-3000:]
    assert "node k3s-gpu-worker is already in mode r1 and serving: nothing to do" in out
    assert recap(out)["changed"] == 0


def test_limit_switches_one_node_and_every_node_switches_under_its_own_lock(cluster, sim, tmp_path, fake_nvml_lib):
    fleet = write_inventory(tmp_path / "fleet.yml", dict(
        (node, node_host(cluster, node, tmp_path, sim, fake_nvml_lib)) for node in (NODE, OTHER_NODE)))
    rc, out = gpu_mode(fleet)
    assert rc != 0 and out.count("No mode given") == 2  # once, not per node (the error and its message)
    assert "Switch each node" not in out  # the play stopped for every node before anything else ran

    rc, out = gpu_mode(fleet, "--limit", OTHER_NODE, mode="other")
    assert rc == 0, out[-3000:]
    assert "node worker2: (none) -> other switched in" in out and "k3s-gpu-worker" not in out
    assert untouched(cluster)  # the other node's objects only

    rc, out = gpu_mode(fleet, mode="off")
    assert rc == 0, out[-3000:]
    assert "node k3s-gpu-worker: (none) -> off switched in" in out and "node worker2: other -> off switched in" in out
    holders = dict((node, cluster.get("coordination.k8s.io/v1", "Lease", "gpu-mode-" + node, NAMESPACE)["spec"])
                   for node in (NODE, OTHER_NODE))
    assert [holders[node]["holderIdentity"] for node in (NODE, OTHER_NODE)] == [None, None]  # both released
    assert holders[OTHER_NODE]["leaseTransitions"] == 1  # worker2 switched twice under its own Lease
    assert cluster.get("apps/v1", "Deployment", "vllm-other", NAMESPACE)["spec"]["replicas"] == 0


def test_a_node_without_the_switcher_installed_is_told_to_run_site_yml(cluster, sim, tmp_path, fake_nvml_lib):
    host = dict(node_host(cluster, NODE, tmp_path, sim, fake_nvml_lib),
                gpu_mode_node_kubeconfig=str(tmp_path / "absent" / "gpu-mode.kubeconfig"))
    rc, out = gpu_mode(write_inventory(tmp_path / "bare.yml", {NODE: host}), mode="r1")
    assert rc != 0
    assert ("k3s-gpu-worker has no %s: the gpu_mode role (site.yml) installs the switcher and the node's kubeconfig; "
            "run it for this node first. Nothing was changed." % (tmp_path / "absent" / "gpu-mode.kubeconfig")) in out
    assert untouched(cluster)


def test_fleet_benchmark_prints_its_figures_line():
    # benchmarks/fleet.py in a tiny configuration: the playbook over 2 simulated nodes at once against 1 alone;
    # the format of its last line only (its speed goal is reported by the benchmark, never asserted here)
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fleet.py"), "--nodes", "2", "--time-scale", "0.05"],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    last = out.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"fleet nodes=2 single_s=([0-9]+\.[0-9]{2}) fleet_s=([0-9]+\.[0-9]{2}) ratio=([0-9]+\.[0-9]{2})",
                         last)
    assert match, last
    single, fleet, ratio = (float(v) for v in match.groups())
    assert single > 0 and fleet > 0
    assert abs(ratio - fleet / single) <= 0.01
