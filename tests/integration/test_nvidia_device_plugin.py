"""baremetal.gpu.nvidia_device_plugin, run by ansible like users run it, against the fake Kubernetes API and
the kubelet simulator (and, opt-in, a real cluster): the RuntimeClass, the plugin's ConfigMap, RBAC and
DaemonSet applied as DESIGN's device plugin contract says, the wait for each GPU node's allocatable
nvidia.com/gpu, its timeout message, and a second run that changes nothing.

The simulated nodes take their nvidia.com/gpu from a Running device plugin pod and its configuration
(no plugin, no GPUs), as a real node does: the plugin and its config manager run as programs in the
kubelet simulator, from the DaemonSet this module applies.

Real cluster (opt-in): ``BAREMETAL_GPU_REAL_CLUSTER=1 KUBECONFIG=...`` runs a server-side dry run of
everything the module applies; with ``BAREMETAL_GPU_REAL_CLUSTER_DEPLOY=1`` as well (a disposable GPU
cluster: it replaces a device plugin named nvidia-device-plugin in kube-system) it runs the deploy, wait
and re-run checks too.
"""

import os
import re
import time

import pytest

from ansible_collections.baremetal.gpu.plugins.module_utils import device_plugin as dp
from ansible_collections.baremetal.gpu.plugins.module_utils.kube import Kube
from tests.harness.ansible_cli import ansible_module, kube_env
from tests.harness.kubelet import LOGIC_TEST_TIME_SCALE, KubeletSimulator, NodeSpec

MODULE = "baremetal.gpu.nvidia_device_plugin"
REAL = os.environ.get("BAREMETAL_GPU_REAL_CLUSTER") == "1" and bool(os.environ.get("KUBECONFIG"))
REAL_DEPLOY = REAL and os.environ.get("BAREMETAL_GPU_REAL_CLUSTER_DEPLOY") == "1"
CONFIG_LABEL = "nvidia.com/device-plugin.config"
T4 = dict(gpu_product="Tesla-T4", gpu_memory_mib=15360)

pytestmark = pytest.mark.slow


@pytest.fixture
def simulate(kube_api):
    """Start a kubelet simulator with the given nodes, as k3s nodes before the device plugin is deployed
    (no nvidia.com/gpu yet); stopped (and checked for errors) afterwards."""
    started = []

    def start(*nodes):
        sim = KubeletSimulator(kube_api.url, nodes=list(nodes), time_scale=LOGIC_TEST_TIME_SCALE,
                               device_plugin=False).start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()
        assert not sim.errors, sim.errors


def run(kubeconfig, check_mode=False, diff=False, **args):
    return ansible_module(MODULE, args, check_mode=check_mode, diff=diff, env=kube_env(kubeconfig))


def by_kind(result):
    return {(r["kind"], r["name"]): r for r in result["results"]}


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.real_cluster)])
def target(request, tmp_path):
    """(kubeconfig, node names the wait is about) on the simulated cluster or on $KUBECONFIG's."""
    if request.param == "fake":
        kube_api = request.getfixturevalue("kube_api")
        request.getfixturevalue("simulate")(NodeSpec(name="k3s-gpu-worker"))
        return kube_api.write_kubeconfig(str(tmp_path / "kubeconfig")), ["k3s-gpu-worker"]
    if not REAL_DEPLOY:
        pytest.skip("opt-in: BAREMETAL_GPU_REAL_CLUSTER=1 BAREMETAL_GPU_REAL_CLUSTER_DEPLOY=1 KUBECONFIG=... "
                    "(a disposable GPU cluster)")
    return os.environ["KUBECONFIG"], []


def test_deploys_the_contract_waits_for_the_gpus_and_a_rerun_changes_nothing(target):
    kubeconfig, nodes = target
    first = run(kubeconfig, nodes=nodes, wait_timeout=120)
    assert not first.get("failed"), first.get("msg")
    assert first["changed"] is True
    results = by_kind(first)
    for key in (("ConfigMap", "nvidia-device-plugin-configs"),
                ("ServiceAccount", "nvidia-device-plugin-service-account"),
                ("ClusterRole", "nvidia-device-plugin-role"),
                ("ClusterRoleBinding", "nvidia-device-plugin-role-binding"),
                ("DaemonSet", "nvidia-device-plugin")):
        assert key in results, key
    assert results[("RuntimeClass", "nvidia")]["action"] in ("created", "unchanged")
    assert first["nodes"], "the wait saw no GPU node"
    for state in first["nodes"]:
        assert state["ready"] and state["done"]
        assert state["allocatable"][state["resource"]] == str(state["expected"])
    if nodes:  # the simulated RTX 3060 node: 1 GPU, default configuration
        (state,) = first["nodes"]
        assert (state["name"], state["config"], state["expected"]) == ("k3s-gpu-worker", "default", 1)

    kube = Kube.from_params({"kubeconfig": kubeconfig})
    try:
        runtime = kube.get("node.k8s.io/v1", "RuntimeClass", "nvidia")
        assert runtime["handler"] == "nvidia"
        ds = kube.get("apps/v1", "DaemonSet", "nvidia-device-plugin", "kube-system")
        spec = ds["spec"]["template"]["spec"]
        assert spec["runtimeClassName"] == "nvidia"
        assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert [c["name"] for c in spec["initContainers"]] == ["nvidia-device-plugin-init"]
        assert [c["name"] for c in spec["containers"]] == ["nvidia-device-plugin-sidecar", "nvidia-device-plugin-ctr"]
        config_map = kube.get("v1", "ConfigMap", "nvidia-device-plugin-configs", "kube-system")
        assert sorted(config_map["data"]) == ["default"]
    finally:
        kube.close()

    again = run(kubeconfig, nodes=nodes, wait_timeout=120)
    assert not again.get("failed"), again.get("msg")
    assert again["changed"] is False
    assert {r["action"] for r in again["results"]} == {"unchanged"}


@pytest.mark.real_cluster
def test_a_real_api_server_accepts_everything_in_a_dry_run():
    if not REAL:
        pytest.skip("opt-in: set BAREMETAL_GPU_REAL_CLUSTER=1 and KUBECONFIG to run against a real cluster")
    result = run(os.environ["KUBECONFIG"], check_mode=True, diff=True, configs={"ts2": {"replicas": 2}})
    assert not result.get("failed"), result.get("msg")
    kinds = {r["kind"] for r in result["results"]}
    assert kinds >= {"ConfigMap", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet"}


def test_the_runtime_class_k3s_created_is_left_to_its_owner(kube_api, kube_client, kubeconfig, simulate):
    # k3s (v1.26.12+k3s1 and later) ships RuntimeClass nvidia itself; the fake API server does too.
    kubernetes = pytest.importorskip("kubernetes")
    node_api = kubernetes.client.NodeV1Api(kube_client)
    before = node_api.read_runtime_class("nvidia")
    simulate(NodeSpec(name="k3s-gpu-worker"))
    result = run(kubeconfig, wait_timeout=60)
    assert not result.get("failed"), result.get("msg")
    runtime = by_kind(result)[("RuntimeClass", "nvidia")]
    assert (runtime["action"], runtime["changed"], runtime["created_by"]) == ("unchanged", False, "k3s")
    after = node_api.read_runtime_class("nvidia")
    assert after.metadata.resource_version == before.metadata.resource_version
    assert {m.manager for m in after.metadata.managed_fields} == {"k3s"}


def test_a_missing_runtime_class_is_created_once(tmp_path):
    # k3s before v1.26.12+k3s1, or a server started with --disable=runtimes: no RuntimeClass nvidia.
    from tests.harness.fake_kube import FakeKubeAPI

    with FakeKubeAPI(disable=("runtimes",)) as api, \
            KubeletSimulator(api.url, nodes=[NodeSpec(name="k3s-gpu-worker")], time_scale=LOGIC_TEST_TIME_SCALE,
                             device_plugin=False) as sim:
        kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"))
        kube = Kube.from_params({"kubeconfig": kubeconfig})
        try:
            assert kube.get("node.k8s.io/v1", "RuntimeClass", "nvidia") is None
            result = run(kubeconfig, wait_timeout=60)
            assert not result.get("failed"), result.get("msg")
            assert by_kind(result)[("RuntimeClass", "nvidia")]["action"] == "created"
            created = kube.get("node.k8s.io/v1", "RuntimeClass", "nvidia")
            assert created["handler"] == "nvidia"
            assert {m["manager"] for m in created["metadata"]["managedFields"]} == {"baremetal-gpu"}
            again = run(kubeconfig, wait_timeout=60)
            assert by_kind(again)[("RuntimeClass", "nvidia")]["action"] == "unchanged"
            assert again["changed"] is False
        finally:
            kube.close()
    assert not sim.errors, sim.errors


def test_a_runtime_class_with_another_handler_is_refused_before_applying(kube_api, kube_client, kubeconfig):
    kubernetes = pytest.importorskip("kubernetes")
    node_api = kubernetes.client.NodeV1Api(kube_client)
    node_api.delete_runtime_class("nvidia")  # the handler cannot be changed in place
    node_api.create_runtime_class({"metadata": {"name": "nvidia"}, "handler": "runc"})
    result = run(kubeconfig, wait_timeout=10)
    assert result["failed"]
    assert "RuntimeClass nvidia exists with handler 'runc', not 'nvidia'" in result["msg"]
    apps = kubernetes.client.AppsV1Api(kube_client)
    assert [d.metadata.name for d in apps.list_namespaced_daemon_set("kube-system").items] == []


def test_with_nvidia_as_default_runtime_no_runtime_class_is_used(kube_api, kube_client, kubeconfig, simulate):
    kubernetes = pytest.importorskip("kubernetes")
    simulate(NodeSpec(name="k3s-gpu-worker"))
    result = run(kubeconfig, default_runtime_nvidia=True, wait_timeout=60)
    assert not result.get("failed"), result.get("msg")
    assert ("RuntimeClass", "nvidia") not in by_kind(result)
    runtime = kubernetes.client.NodeV1Api(kube_client).read_runtime_class("nvidia")
    assert {m.manager for m in runtime.metadata.managed_fields} == {"k3s"}
    ds = kubernetes.client.AppsV1Api(kube_client).read_namespaced_daemon_set("nvidia-device-plugin", "kube-system")
    assert ds.spec.template.spec.runtime_class_name is None


def test_the_simulators_preinstalled_plugin_is_this_modules_own(kube_api, kubeconfig):
    # The kubelet simulator's GPU nodes come with the device plugin already deployed (as after site.yml),
    # rendered by this module's own code: deploying it again changes nothing.
    with KubeletSimulator(kube_api.url, nodes=[NodeSpec(name="k3s-gpu-worker")],
                          time_scale=LOGIC_TEST_TIME_SCALE) as sim:
        result = run(kubeconfig, nodes=["k3s-gpu-worker"], wait_timeout=30)
    assert not sim.errors, sim.errors
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False, [r for r in result["results"] if r["changed"]]


def test_bad_input_fails_before_the_cluster_is_touched(tmp_path):
    result = run(tmp_path / "no-cluster.kubeconfig", configs={"t4-ts2": {"replicas": 0}})
    assert result["failed"]
    assert result["msg"] == ("nvidia_device_plugin cannot continue, nothing was changed: configuration t4-ts2: "
                             "time-slicing replicas must be 1 (no sharing) or more, got 0")


def test_a_node_selecting_a_configuration_that_does_not_exist_fails_at_once(kube_api, kubeconfig, simulate):
    simulate(NodeSpec(name="t4-node", labels={CONFIG_LABEL: "t4-ts4"}, **T4))
    started = time.monotonic()
    result = run(kubeconfig, configs={"t4-ts2": {"replicas": 2}}, nodes=["t4-node"], wait_timeout=120)
    assert result["failed"]
    assert ("node t4-node selects device plugin configuration 't4-ts4' (label nvidia.com/device-plugin.config) "
            "but the ConfigMap has only default, t4-ts2") in result["msg"]
    assert time.monotonic() - started < 60  # not the 120 s timeout


def test_the_timeout_names_the_node_its_plugin_pod_events_and_logs(kube_api, kubeconfig, simulate):
    # The node was labelled with 2 GPUs when it joined, but only 1 answers now (a GPU fell off the bus):
    # the plugin advertises 1 of the 2 expected.
    simulate(NodeSpec(name="k3s-gpu-worker", gpus=1, labels={"nvidia.com/gpu.count": "2"}))
    started = time.monotonic()
    result = run(kubeconfig, nodes=["k3s-gpu-worker"], wait_timeout=6)
    assert result["failed"]
    message = result["msg"]
    assert 6 <= time.monotonic() - started < 60
    head = re.match(r"^1 GPU node\(s\) did not advertise their GPUs after (\d+\.\d) s\n", message)
    assert head and 6.0 <= float(head.group(1)) < 60, message[:200]
    assert ("node k3s-gpu-worker: Ready=True; allocatable nvidia.com/gpu=1, expected nvidia.com/gpu=2 "
            "(2 GPU(s) x 1 replica(s), configuration 'default')") in message
    pod = re.search(r"^  pod (nvidia-device-plugin-\w+): phase Running on k3s-gpu-worker$", message, re.M)
    assert pod, message
    pod_events = [line for line in message.splitlines() if line.startswith("    event: Normal ")]
    assert pod_events, message  # the plugin pod's last events (Scheduled, Pulled, Created, Started, ...)
    # the plugin's own last words: it registered 1 GPU with the kubelet
    assert "Registered device plugin for 'nvidia.com/gpu' with Kubelet" in message
    assert result["diagnostics"][0]["node"] == "k3s-gpu-worker"
    assert result["changed"] is True  # it applied the plugin before it waited


def test_a_gpu_node_that_never_joins_is_named(kube_api, kubeconfig, simulate):
    simulate(NodeSpec(name="k3s-gpu-worker"))
    result = run(kubeconfig, nodes=["k3s-gpu-worker", "t4-node"], wait_timeout=3)
    assert result["failed"]
    assert "node t4-node: not registered with the cluster (is k3s running on it and joined?)" in result["msg"]
    assert "node k3s-gpu-worker" not in result["msg"]


def test_a_cluster_without_any_gpu_node_is_said_plainly(kube_api, kubeconfig, simulate):
    simulate(NodeSpec(name="cpu-node", gpus=0))
    result = run(kubeconfig, wait_timeout=3)
    assert result["failed"]
    assert result["msg"].startswith("no GPU node advertised its GPUs after ")
    assert "no node carries nvidia.com/gpu.present=true" in result["msg"]


def test_time_slicing_two_on_the_t4_advertises_two(kube_api, kube_client, kubeconfig, simulate):
    kubernetes = pytest.importorskip("kubernetes")
    simulate(NodeSpec(name="t4-node", labels={CONFIG_LABEL: "t4-ts2"}, **T4))
    result = run(kubeconfig, configs={"t4-ts2": {"replicas": 2}}, nodes=["t4-node"], wait_timeout=10)
    assert not result.get("failed"), result.get("msg")
    (state,) = result["nodes"]
    assert (state["config"], state["gpus"], state["replicas"], state["expected"]) == ("t4-ts2", 1, 2, 2)
    node = kubernetes.client.CoreV1Api(kube_client).read_node("t4-node")
    assert node.status.allocatable["nvidia.com/gpu"] == "2"
    assert node.status.capacity["nvidia.com/gpu"] == "2"


def test_relabelling_a_node_switches_its_configuration_without_a_redeploy(kube_client, kubeconfig, simulate):
    # As when k3s_gpu_worker_device_plugin_config changes: k3s restarts and re-applies the node's labels,
    # the config manager sidecar copies the new configuration and sends the plugin SIGHUP.
    kubernetes = pytest.importorskip("kubernetes")
    simulate(NodeSpec(name="t4-node", **T4))
    configs = {"t4-ts2": {"replicas": 2}}
    first = run(kubeconfig, configs=configs, nodes=["t4-node"], wait_timeout=30)
    assert not first.get("failed"), first.get("msg")
    assert [(n["config"], n["expected"]) for n in first["nodes"]] == [("default", 1)]
    kubernetes.client.CoreV1Api(kube_client).patch_node("t4-node", {"metadata": {"labels": {CONFIG_LABEL: "t4-ts2"}}})
    second = run(kubeconfig, configs=configs, nodes=["t4-node"], wait_timeout=30)
    assert not second.get("failed"), second.get("msg")
    assert second["changed"] is False  # nothing re-applied: the sidecar did it
    assert [(n["config"], n["expected"], n["allocatable"]) for n in second["nodes"]] == [
        ("t4-ts2", 2, {"nvidia.com/gpu": "2"})]


def test_without_the_plugin_a_node_advertises_no_gpu(kube_api, kube_client, kubeconfig, simulate):
    kubernetes = pytest.importorskip("kubernetes")
    simulate(NodeSpec(name="k3s-gpu-worker"))
    core = kubernetes.client.CoreV1Api(kube_client)
    deadline = time.monotonic() + 10
    while core.list_node().items == [] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "nvidia.com/gpu" not in (core.read_node("k3s-gpu-worker").status.allocatable or {})
    result = run(kubeconfig, nodes=["k3s-gpu-worker"], wait_timeout=10)
    assert not result.get("failed"), result.get("msg")
    assert core.read_node("k3s-gpu-worker").status.allocatable["nvidia.com/gpu"] == "1"


def test_renamed_shared_resource_replaces_nvidia_gpu(kube_api, kube_client, kubeconfig, simulate):
    kubernetes = pytest.importorskip("kubernetes")
    simulate(NodeSpec(name="t4-node", labels={CONFIG_LABEL: "shared4"}, **T4))
    result = run(kubeconfig, configs={"shared4": {"replicas": 4, "rename_by_default": True}}, nodes=["t4-node"],
                 wait_timeout=10)
    assert not result.get("failed"), result.get("msg")
    allocatable = kubernetes.client.CoreV1Api(kube_client).read_node("t4-node").status.allocatable
    assert allocatable.get("nvidia.com/gpu.shared") == "4"
    assert allocatable.get("nvidia.com/gpu", "0") == "0"
    assert dp.resource_name(dp.normalize_configs({"s": {"replicas": 4, "rename_by_default": True}})["s"]) == \
        "nvidia.com/gpu.shared"
