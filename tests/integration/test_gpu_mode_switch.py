"""GPU mode switches as a node runs them: the `gpu-mode` CLI in its own process "on" the simulated node
(NVML is the stand-in library reading that node's GPU memory ledger, /proc is the ledger's export), against
the fake API server, the kubelet simulator (real probe periods, termination grace, crash-loop back-off, at a
time scale) and fake vLLM servers that allocate GPU memory and refuse to start without their share.

The home lab's catalog and modes (inventories/homelab) are deployed by the vllm role's manifests; every test
starts from mode ml active and serving.
"""

import json
import threading
import time

import pytest

from ansible_collections.baremetal.gpu.plugins.module_utils import kube as k8s
from tests.harness.gpu_mode_node import Node, inventory_manifests, marked
from tests.harness.kubelet import KubeletSimulator, NodeSpec

NODE = "k3s-gpu-worker"
NS = "ml"
SCALE = 0.05  # simulated seconds -> real: a 1 s probe period lasts 50 ms, a 20 s model load 1 s

pytestmark = pytest.mark.slow


def homelab_manifests(**catalog_changes):
    return inventory_manifests("homelab", **catalog_changes)


@pytest.fixture
def node(kube_api, kubeconfig, collection_kube, fake_nvml_lib, tmp_path, request):
    """Marks: ``catalog(entry={key: value})`` changes catalog entries, ``gpu(**NodeSpec keywords)`` the node,
    ``faults(deployment={FakeVLLMServer keywords})`` the fake vLLM of a Deployment's pods (crash, hang, ...)."""
    changes = marked(request, "catalog")
    faults = marked(request, "faults")
    spec = NodeSpec(name=NODE, **marked(request, "gpu"))

    def overrides(ctx):
        owner = ctx.pod["metadata"]["labels"].get("app.kubernetes.io/instance", "")
        return faults.get(owner, {})

    with KubeletSimulator(kube_api.url, nodes=[spec], time_scale=SCALE, state_dir=tmp_path / "cluster",
                          vllm_load_seconds=20, vllm_shutdown_seconds=2, vllm_overrides=overrides) as sim:
        k8s.apply_all(collection_kube, homelab_manifests(**changes))
        the_node = Node(sim, collection_kube, kubeconfig, fake_nvml_lib, tmp_path, NODE, NS)
        result, _err = the_node.switch("ml")  # what site.yml's activation does on a fresh cluster
        assert result["outcome"] == "switched"
        yield the_node
    assert not sim.errors, sim.errors


def test_ml_to_r1_and_back_waits_for_the_memory_before_starting_the_next(node):
    assert node.serves() == ["Qwen/Qwen3-8B-AWQ", "vllm-qwen"]
    ledger = node.ledger()
    ml_pid = next(p.pid for p in ledger.processes(0))
    result, err = node.switch("r1")
    assert result["from"] == "ml" and result["to"] == "r1" and result["outcome"] == "switched"
    assert result["plan"]["stop"] == ["vllm-ml"] and result["plan"]["start"] == {"vllm-r1": 1}
    assert node.replicas() == {"vllm-ml": 0, "vllm-r1": 1}
    assert node.serves() == ["casperhansen/deepseek-r1-distill-qwen-7b-awq", "vllm-r1"]
    # the order that matters: ml's memory was released (after its process exited) before r1 allocated any
    released = ledger.released_at(ml_pid)
    (r1_pid,) = [p.pid for p in ledger.processes(0)]
    first_allocation = min(t for t, event, pid, _detail in ledger.history if pid == r1_pid and event == "allocate")
    assert released is not None and released < first_allocation
    assert result["release"]["released_at"] >= released  # the switcher saw it, not assumed it
    for phase in ("validate", "lock", "drain", "stop", "release", "start", "health", "record"):
        assert phase in result["phases"]
    mode, history = node.recorded()
    assert mode == "r1" and history[0]["from"] == "ml" and history[0]["outcome"] == "switched"

    back, _err = node.switch("ml")
    assert back["outcome"] == "switched" and node.serves() == ["Qwen/Qwen3-8B-AWQ", "vllm-qwen"]
    assert node.recorded()[0] == "ml"


def test_off_frees_the_gpu_and_a_switch_back_serves_again(node):
    result, _err = node.switch("off")
    assert result["plan"]["stop"] == ["vllm-ml"] and result["plan"]["start"] == {}
    assert node.replicas() == {"vllm-ml": 0, "vllm-r1": 0}
    assert node.ledger().used_mib(0) == 0 and node.serves() is None
    assert node.switch("ml")[0]["outcome"] == "switched"
    assert node.serves() == ["Qwen/Qwen3-8B-AWQ", "vllm-qwen"]


def test_an_unknown_mode_lists_the_valid_ones_and_changes_nothing(node):
    code, _out, err = node.run("r2")
    assert code == 2
    assert "unknown mode 'r2' for node k3s-gpu-worker; valid modes: ml (default):" in err
    assert "off: no model; the GPU is free" in err and "r1: casperhansen" in err
    assert node.replicas() == {"vllm-ml": 1, "vllm-r1": 0}


def test_switching_to_the_active_serving_mode_changes_nothing(node):
    before = node.kube.get("apps/v1", "Deployment", "vllm-ml", NS)["metadata"]["resourceVersion"]
    result, _err = node.switch("ml")
    assert result["outcome"] == "unchanged" and result["changed"] is False
    assert node.kube.get("apps/v1", "Deployment", "vllm-ml", NS)["metadata"]["resourceVersion"] == before
    assert len(node.recorded()[1]) == 1  # no history entry for a no-op


def test_dry_run_prints_the_plan_and_changes_nothing(node):
    code, out, _err = node.run("r1", "--dry-run")
    assert code == 0
    assert "k3s-gpu-worker: ml -> r1 (dry run: nothing changed)" in out
    assert "stop:  vllm-ml" in out and "start: vllm-r1 x1" in out and "expected load: about 90 s" in out
    assert node.replicas() == {"vllm-ml": 1, "vllm-r1": 0} and node.recorded()[0] == "ml"


@pytest.mark.catalog(r1={"max_model_len": 131072})
def test_a_mode_that_does_not_fit_is_refused_before_anything_changes(node):
    code, _out, err = node.run("r1")
    assert code == 2
    assert "mode r1 does not fit node k3s-gpu-worker: vllm-r1: The model's max seq len (131072) is larger than" in err
    assert node.replicas() == {"vllm-ml": 1, "vllm-r1": 0} and node.serves() is not None


@pytest.mark.faults(**{"vllm-r1": {"crash_during_load": True}})
def test_a_target_that_crashes_while_loading_is_rolled_back(node):
    code, out, err = node.run("r1", timeout=180)
    assert code == 1, err
    assert "failed in phase start" in err and "exited with code 1" in err
    assert "Engine core initialization failed" in err  # the crashed run's own last log lines
    assert "rolled back to mode ml" in err
    assert node.replicas() == {"vllm-ml": 1, "vllm-r1": 0}
    assert node.serves() == ["Qwen/Qwen3-8B-AWQ", "vllm-qwen"]
    mode, history = node.recorded()
    assert mode == "ml" and history[0]["outcome"] == "rolled back" and "exited with code 1" in history[0]["error"]


@pytest.mark.faults(**{"vllm-r1": {"hang": True}})
def test_a_target_that_never_becomes_healthy_times_out_and_is_rolled_back(node):
    code, _out, err = node.run("r1", "--timeout", "3", timeout=180)
    assert code == 1, err
    assert "not ready before the deadline: vllm-r1" in err and "rolled back to mode ml" in err
    assert node.serves() == ["Qwen/Qwen3-8B-AWQ", "vllm-qwen"]


@pytest.mark.gpu(gpu_product="NVIDIA-H100-80GB-HBM3", gpu_memory_mib=81559)
@pytest.mark.catalog(ml={"gpu_memory_utilization": 0.4, "image": "vllm/vllm-openai:v0.9.1"},
                     r1={"gpu_memory_utilization": 0.4, "image": "vllm/vllm-openai:v0.9.1"})
def test_memory_that_is_never_released_fails_clearly_and_restores_the_previous_mode(node):
    # Two 0.4 shares on an 80 GB GPU, and vLLM 0.9.1+, which starts when its share is free (0.8 also counted
    # other processes' memory against its own budget, so nothing could start beside stuck memory)
    ledger = node.ledger()
    (ml_pid,) = [p.pid for p in ledger.processes(0)]
    ledger.stick(ml_pid)  # a zombie keeps the device: its memory stays after the process exits
    code, _out, err = node.run("r1", "--release-timeout", "3", timeout=180)
    assert code == 1, err
    assert "failed in phase release" in err
    assert "pid %d python3" % ml_pid in err and "exited, memory not released yet" in err
    assert "rolled back to mode ml" in err
    assert node.replicas() == {"vllm-ml": 1, "vllm-r1": 0}
    assert node.serves() == ["Qwen/Qwen3-8B-AWQ", "vllm-qwen"]
    ledger.stick(ml_pid, False)


def test_of_two_concurrent_switches_one_wins_and_the_other_names_it(node):
    first = node.start("r1", "--json")
    deadline = time.monotonic() + 30
    while not ((node.kube.get("coordination.k8s.io/v1", "Lease", "gpu-mode-" + NODE, NS) or {}).get("spec") or
               {}).get("holderIdentity"):
        assert time.monotonic() < deadline, "the first switch never took the lock"
        time.sleep(0.02)
    code, _out, err = node.run("off")
    assert code == 3
    assert "another switch is running" in err and "held by" in err
    out, _err = first.communicate(timeout=120)
    assert first.returncode == 0 and json.loads(out)["outcome"] == "switched"
    assert node.recorded()[0] == "r1" and node.replicas() == {"vllm-ml": 0, "vllm-r1": 1}


def test_a_stale_lease_of_a_crashed_switcher_is_taken_over(node):
    lease = node.kube.get("coordination.k8s.io/v1", "Lease", "gpu-mode-" + NODE, NS)
    lease["spec"].update(holderIdentity="crashed@elsewhere pid 1", leaseDurationSeconds=5,
                         renewTime="2026-01-01T00:00:00.000000Z")
    node.kube.request("PUT", node.kube.path("coordination.k8s.io/v1", "Lease", NS, "gpu-mode-" + NODE), body=lease)
    result, _err = node.switch("r1")
    assert result["outcome"] == "switched"
    spec = node.kube.get("coordination.k8s.io/v1", "Lease", "gpu-mode-" + NODE, NS)["spec"]
    assert spec.get("holderIdentity") is None and spec["leaseTransitions"] >= 1


@pytest.mark.faults(**{"vllm-ml": {"token_delay": 10.0}})  # 10 simulated s a token: 0.5 s real
def test_a_switch_waits_for_a_request_in_flight_and_takes_the_pod_out_of_the_service_first(node):
    answers = []

    def long_request():
        answers.append(node.kube.request(
            "POST", "/api/v1/namespaces/%s/services/vllm-api:8000/proxy/v1/completions" % NS,
            body={"model": "vllm-qwen", "prompt": "Write a long story.", "max_tokens": 40}, timeout=60))

    client = threading.Thread(target=long_request)
    client.start()
    time.sleep(0.3)
    result, _err = node.switch("r1")
    client.join(10)
    # the answer was not cut off: it arrived whole (a stream cut mid-way fails the request instead)
    assert answers and answers[0]["choices"][0]["finish_reason"] in ("stop", "length")
    assert answers[0]["usage"]["completion_tokens"] >= 2
    assert result["drain_seconds"] > 0.5  # the switch waited for it


def test_the_vllm_roles_next_run_after_a_switch_changes_nothing_and_keeps_the_mode(node):
    assert node.switch("r1")[0]["outcome"] == "switched"
    results, _applied = k8s.apply_all(node.kube, homelab_manifests())  # what site.yml's vllm role applies
    assert [r["name"] for r in results if r["changed"]] == []
    assert node.replicas() == {"vllm-ml": 0, "vllm-r1": 1} and node.recorded()[0] == "r1"
    assert node.serves() == ["casperhansen/deepseek-r1-distill-qwen-7b-awq", "vllm-r1"]
    assert node.switch("r1")[0]["outcome"] == "unchanged"  # and r1 is still the active, serving mode


def test_activation_brings_up_the_recorded_mode_not_the_default(node):
    from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.switch import switch

    assert node.switch("r1")[0]["outcome"] == "switched"
    result = switch(node.kube, NS, NODE, None)  # what site.yml's activation asks: recorded, else default
    assert result["to"] == "r1" and result["outcome"] == "unchanged"
    assert node.replicas() == {"vllm-ml": 0, "vllm-r1": 1}
