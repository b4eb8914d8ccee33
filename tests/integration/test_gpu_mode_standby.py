"""Hot-standby GPU modes as a node runs them: `gpu-mode` in its own process "on" the simulated node (NVML and
/proc are the node's GPU memory ledger export), the fake API server, the kubelet simulator (time-sliced
device plugin, real probe periods at a time scale) and fake vLLM servers in sleep mode that hold their
residue asleep, refuse a wake-up when a peer still holds the memory, and answer 404 for routes they do
not serve.

The home lab's hot-standby variant (inventories/examples/homelab-standby: ml and r1 both resident on the
RTX 3060, the inactive one asleep) is deployed by the vllm role's manifests; every test starts from mode
ml active: ml awake and serving, r1 asleep.
"""

import json
import threading
import time

import pytest

from ansible_collections.baremetal.gpu.plugins.module_utils import kube as k8s
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import access
from tests.harness import gpu_mode_cluster as world
from tests.harness.gpu_mode_node import Node, inventory_manifests, marked
from tests.harness.kubelet import KubeletSimulator, NodeSpec

NODE = "k3s-gpu-worker"
NS = "ml"
SCALE = 0.05  # simulated seconds -> real: a 20 s model load lasts 1 s
QWEN = ["Qwen/Qwen3-8B-AWQ", "vllm-qwen"]
R1 = ["casperhansen/deepseek-r1-distill-qwen-7b-awq", "vllm-r1"]
SLEEP_S, WAKE_S = 2.0, 4.0  # simulated seconds the fake vLLM takes to fall asleep and to wake up

pytestmark = pytest.mark.slow


def standby_manifests(**catalog_changes):
    return inventory_manifests("homelab-standby", **catalog_changes)


@pytest.fixture
def node(kube_api, kubeconfig, collection_kube, fake_nvml_lib, tmp_path, request):
    """Marks as in test_gpu_mode_switch: ``catalog(entry={key: value})``, ``gpu(**NodeSpec keywords)``,
    ``faults(deployment={FakeVLLMServer keywords})`` for every pod of a Deployment, ``faults(later={deployment:
    {...}})`` more for the pods that replace its first one (the one the first activation starts)."""
    changes = marked(request, "catalog")
    faults = marked(request, "faults")
    later = faults.pop("later", {})
    gpu = dict({"time_slicing_replicas": 2}, **marked(request, "gpu"))  # two resident pods: nvidia.com/gpu each
    first_pod = {}

    def overrides(ctx):
        owner = ctx.pod["metadata"]["labels"].get("app.kubernetes.io/instance", "")
        first = first_pod.setdefault(owner, ctx.pod["metadata"]["uid"]) == ctx.pod["metadata"]["uid"]
        out = {"sleep_seconds": SLEEP_S, "wake_seconds": WAKE_S}
        out.update(faults.get(owner, {}))
        if not first:
            out.update(later.get(owner, {}))
        return out

    spec = NodeSpec(name=NODE, **gpu)
    with KubeletSimulator(kube_api.url, nodes=[spec], time_scale=SCALE, state_dir=tmp_path / "cluster",
                          vllm_load_seconds=20, vllm_shutdown_seconds=2, vllm_overrides=overrides) as sim:
        k8s.apply_all(collection_kube, standby_manifests(**changes))
        the_node = Node(sim, collection_kube, kubeconfig, fake_nvml_lib, tmp_path, NODE, NS)
        first, _err = the_node.switch("ml")  # the first activation: r1 started alone and put to sleep, then ml
        assert first["outcome"] == "switched" and first["plan"]["standby_start"] == ["vllm-r1"], first
        yield the_node
    assert not sim.errors, sim.errors


def status(node):
    code, out, err = node.run("status", "--json")
    assert code == 0, err
    return json.loads(out)


def states(node):
    return dict((w["name"], w["state"]) for w in status(node)["workloads"])


def gpu_pids(node):
    """{deployment: (pid, MiB on GPU 0)} of the servers on the ledger."""
    out = {}
    ledger = node.ledger()
    for proc in ledger.processes(0):
        pod = next((p for p in node.kube.items("v1", "Pod", NS) if p["metadata"]["uid"] == proc.pod_uid), None)
        if pod is not None and proc.exited_at is None:
            out[pod["metadata"]["labels"]["app.kubernetes.io/instance"]] = (proc.pid, proc.usage.get(0, 0))
    return out


def test_first_activation_leaves_ml_serving_and_r1_asleep_holding_only_its_residue(node):
    assert node.serves() == QWEN
    assert states(node) == {"vllm-ml": "awake", "vllm-r1": "asleep"}
    held = gpu_pids(node)
    assert held["vllm-r1"][1] <= 1229 + 64  # v0.8.5.post1 keeps about 1.2 GiB asleep (compat_data)
    # ml awake: v0.8.5.post1 fills 0.85 x 12288 = 10445 MiB of the device, less what the idle GPU and the
    # sleeper held when it started
    assert 8500 < held["vllm-ml"][1] <= 10445
    # the sleeper is out of the Service: its pod lacks the label the Service selects
    (r1_pod,) = node.pods("vllm-r1")
    assert "app" not in r1_pod["metadata"]["labels"]


def test_ml_to_r1_and_back_through_standby_wakes_the_same_processes(node):
    before = gpu_pids(node)
    result, _err = node.switch("r1")
    assert result["outcome"] == "switched"
    assert result["plan"]["sleep"] == ["vllm-ml"] and result["plan"]["wake"] == {"vllm-r1": 1}
    assert result["plan"]["stop"] == [] and result["plan"]["start"] == {} and result["plan"]["standby_start"] == []
    assert node.serves() == R1 and node.replicas() == {"vllm-ml": 1, "vllm-r1": 1}
    assert states(node) == {"vllm-ml": "asleep", "vllm-r1": "awake"}
    after = gpu_pids(node)
    # nothing was restarted: the same two processes, ml down to its residue, r1 back to its share
    assert after["vllm-ml"][0] == before["vllm-ml"][0] and after["vllm-r1"][0] == before["vllm-r1"][0]
    assert after["vllm-ml"][1] <= 1229 + 64 and after["vllm-r1"][1] > 9000
    # the switch did not wait for a load: its phases are the standby ones, each timed
    for phase in ("validate", "lock", "drain", "sleep", "release", "wake", "health", "record"):
        assert phase in result["phases"], result["phases"]
    assert "start" not in result["plan"] or not result["plan"]["start"]
    mode, history = node.recorded()
    assert mode == "r1" and history[0]["from"] == "ml" and history[0]["outcome"] == "switched"

    back, _err = node.switch("ml")
    assert back["plan"]["sleep"] == ["vllm-r1"] and back["plan"]["wake"] == {"vllm-ml": 1}
    assert node.serves() == QWEN and states(node) == {"vllm-ml": "awake", "vllm-r1": "asleep"}
    assert gpu_pids(node)["vllm-ml"][0] == before["vllm-ml"][0]


def test_the_active_server_is_asleep_and_its_memory_released_before_the_target_wakes(node):
    ledger = node.ledger()
    pids = gpu_pids(node)
    ml_pid, r1_pid = pids["vllm-ml"][0], pids["vllm-r1"][0]
    mark = len(ledger.history)
    result, _err = node.switch("r1")
    assert result["outcome"] == "switched"
    events = ledger.history[mark:]
    # ml's sleep: the shrink of its memory down to its residue
    ml_down = min(t for t, event, pid, detail in events if pid == ml_pid and event == "shrink")
    # r1's wake-up: the first allocation of its process in this switch (weights and KV cache mapped again)
    r1_up = min(t for t, event, pid, detail in events if pid == r1_pid and event == "allocate")
    assert ml_down < r1_up
    # and the switcher saw the release on the GPU (NVML, the node's view) before it woke r1
    assert result["release"]["released_at"] is not None
    assert not [e for e in events if e[1] == "allocate" and e[2] == r1_pid and e[0] < ml_down]


def test_waking_the_target_while_the_active_one_holds_its_share_is_what_the_order_prevents(node):
    # the simulator refuses the wrong order, as a real GPU would: a wake-up beside an awake peer is an OOM
    (r1_pod,) = node.pods("vllm-r1")
    with pytest.raises(k8s.KubeError) as err:
        node.kube.request("POST", "/api/v1/namespaces/%s/pods/%s:8001/proxy/wake_up" % (NS, r1_pod["metadata"]["name"]),
                          timeout=30)
    assert err.value.status == 500  # vLLM 0.8.5.post1 answers a bare 500; its log says why
    logs = node.kube.logs(NS, r1_pod["metadata"]["name"], container="vllm", tail=20)
    assert any("CUDA Error: out of memory at /workspace/csrc/cumem_allocator.cpp:62" in line for line in logs)


@pytest.mark.faults(**{"vllm-r1": {"fail_wake": True}})  # its first pod loads, then cannot wake
def test_a_wake_up_that_fails_falls_back_to_a_cold_start_of_that_workload(node):
    (old_pod,) = node.pods("vllm-r1")
    result, _err = node.switch("r1", timeout=180)
    assert result["outcome"] == "switched"
    (cold,) = result["cold_restarts"]
    assert cold["workload"] == "vllm-r1" and "wake_up" in cold["why"] and "cumem_allocator.cpp" in cold["why"]
    (new_pod,) = node.pods("vllm-r1")
    assert new_pod["metadata"]["uid"] != old_pod["metadata"]["uid"]  # restarted: a new pod, loaded cold
    assert node.serves() == R1
    assert states(node) == {"vllm-ml": "asleep", "vllm-r1": "awake"}
    assert node.recorded()[0] == "r1"


@pytest.mark.faults(later={"vllm-r1": {"crash_during_load": True}}, **{"vllm-r1": {"fail_wake": True}})
def test_a_failed_wake_whose_cold_start_fails_too_rolls_back_to_the_previous_mode(node):
    code, _out, err = node.run("r1", timeout=180)
    assert code == 1, err
    assert "rolled back to mode ml" in err and "ml awake again" in err
    assert node.serves() == QWEN and node.recorded()[0] == "ml"
    assert states(node)["vllm-ml"] == "awake"


@pytest.mark.faults(**{"vllm-r1": {"wake_seconds": 100.0}})  # a slow wake-up (5 s real): the race is certain
def test_of_two_concurrent_switches_one_wins_and_the_node_ends_consistent(node):
    first = node.start("r1", "--json")
    deadline = time.monotonic() + 30
    while not ((node.kube.get("coordination.k8s.io/v1", "Lease", "gpu-mode-" + NODE, NS) or {}).get("spec") or
               {}).get("holderIdentity"):
        assert time.monotonic() < deadline, "the first switch never took the lock"
        time.sleep(0.01)
    # back to ml, the recorded mode, while the first switch runs: not "already serving", the lock decides
    code, _out, err = node.run("ml")
    assert code == 3 and "another switch is running" in err, err
    out, _err = first.communicate(timeout=120)
    assert first.returncode == 0 and json.loads(out)["outcome"] == "switched"
    assert node.recorded()[0] == "r1" and node.serves() == R1
    assert states(node) == {"vllm-ml": "asleep", "vllm-r1": "awake"}


@pytest.mark.catalog(r1={"gpu_memory_utilization": 0.92})
def test_a_target_that_does_not_fit_beside_the_sleeper_is_refused_before_any_change(node):
    before = dict((d["metadata"]["name"], d["metadata"]["resourceVersion"])
                  for d in node.kube.items("apps/v1", "Deployment", NS))
    history = node.recorded()[1]
    code, _out, err = node.run("r1")
    assert code == 2, err
    # r1 awake at 0.92 (11305 MiB) + ml asleep (1229 MiB) + the idle GPU's 250 MiB do not fit 12288 MiB
    assert "mode r1 does not fit node k3s-gpu-worker: vllm-r1: Free memory on device" in err
    assert "vllm-ml (asleep, 1229 MiB)" in err
    assert states(node) == {"vllm-ml": "awake", "vllm-r1": "asleep"} and node.serves() == QWEN
    assert node.recorded()[1] == history
    # `gpu-mode list` gives the same verdict, per mode
    code, out, err = node.run("list", "--json")
    assert code == 0, err
    fits = dict((m["mode"], (m["fit"], m["why"])) for m in json.loads(out)["modes"])
    assert fits["ml"][0] in ("ok", "warn") and fits["r1"][0] == "fail" and "vllm-ml (asleep, 1229 MiB)" in fits["r1"][1]
    assert before == dict((d["metadata"]["name"], d["metadata"]["resourceVersion"])
                          for d in node.kube.items("apps/v1", "Deployment", NS))


def test_dry_run_shows_the_sleep_and_the_wake_up(node):
    code, out, _err = node.run("r1", "--dry-run")
    assert code == 0
    assert "sleep: vllm-ml" in out and "wake:  vllm-r1" in out and "expected load: about 0 s" in out
    assert states(node) == {"vllm-ml": "awake", "vllm-r1": "asleep"}


def test_the_client_service_cannot_reach_the_sleep_endpoints_while_the_switcher_can(node):
    service = "/api/v1/namespaces/%s/services/vllm-api:8000/proxy" % NS
    for method, path in (("POST", "/sleep?level=1"), ("POST", "/wake_up"), ("GET", "/is_sleeping"),
                         ("POST", "/collective_rpc"), ("POST", "/reset_prefix_cache"), ("GET", "/server_info"),
                         ("POST", "/v1/../sleep"), ("POST", "/v1/load_lora_adapter")):
        status, text = node.kube.call(method, service + path, body={"method": "reload_weights"}, timeout=10)
        assert (status, json.loads(text)) == (404, {"detail": "Not Found"}), (method, path, status, text)
    # what clients use passes through the gate, streaming included
    status, text = node.kube.call("POST", service + "/v1/chat/completions", timeout=30, body={
        "model": "vllm-qwen", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True})
    assert status == 200 and text.rstrip().endswith("data: [DONE]")
    # the Service has no other port, and none of the Services or the Ingress targets the engine port
    with pytest.raises(k8s.KubeError):
        node.kube.request("GET", "/api/v1/namespaces/%s/services/vllm-api:8001/proxy/is_sleeping" % NS, timeout=10)
    for svc in node.kube.items("v1", "Service", NS):
        assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["http"]
    # nothing changed: ml still awake, r1 still asleep
    assert states(node) == {"vllm-ml": "awake", "vllm-r1": "asleep"}
    # the switcher, through the pod proxy on vLLM's own port (pods/proxy, which clients are not granted)
    (r1_pod,) = node.pods("vllm-r1")
    answer = node.kube.request("GET", "/api/v1/namespaces/%s/pods/%s:8001/proxy/is_sleeping"
                               % (NS, r1_pod["metadata"]["name"]), timeout=10)
    assert answer == {"is_sleeping": True}
    # and the NetworkPolicies that keep other pods off the engine port are in place
    policies = dict((p["metadata"]["name"], p["spec"])
                    for p in node.kube.items("networking.k8s.io/v1", "NetworkPolicy", NS))
    assert policies["vllm-r1-engine"]["ingress"] == [{"ports": [{"port": 8000, "protocol": "TCP"}]}]


def test_status_shows_awake_asleep_and_the_gpu_memory_of_each_process(node):
    data = status(node)
    (gpu,) = data["gpus"]
    by_pod = dict((p["pod"].split("/")[1].rsplit("-", 2)[0], p["used_mib"]) for p in gpu["processes"] if p["pod"])
    assert set(by_pod) == {"vllm-ml", "vllm-r1"} and by_pod["vllm-r1"] <= 1229 + 64
    code, out, _err = node.run("status")
    assert code == 0
    assert "vllm-ml" in out and "awake" in out and "asleep" in out and "standby in ml" in out


def test_a_concurrent_client_request_is_not_cut_off_by_a_standby_switch(node):
    answers = []

    def long_request():
        answers.append(node.kube.request(
            "POST", "/api/v1/namespaces/%s/services/vllm-api:8000/proxy/v1/completions" % NS,
            body={"model": "vllm-qwen", "prompt": "Write a story.", "max_tokens": 20}, timeout=60))

    client = threading.Thread(target=long_request)
    client.start()
    result, _err = node.switch("r1")
    client.join(30)
    assert answers and answers[0]["usage"]["completion_tokens"] >= 1
    assert result["outcome"] == "switched"


LEVEL2 = {"image": "vllm/vllm-openai:v0.17.0", "sleep_level": 2, "gpu_memory_utilization": 0.4, "max_model_len": 8192}


@pytest.mark.gpu(gpu_product="NVIDIA-H100-80GB-HBM3", gpu_memory_mib=81559)
@pytest.mark.catalog(ml=LEVEL2, r1=LEVEL2)
def test_level_2_wakes_the_weights_reloads_them_then_the_kv_cache(node):
    # vLLM 0.17.0 on an H100: level 2 drops the weights too; waking maps them, reloads them from the model
    # files (POST /collective_rpc reload_weights), then maps the KV cache
    (r1_pod,) = node.pods("vllm-r1")
    assert states(node) == {"vllm-ml": "awake", "vllm-r1": "asleep"}
    result, _err = node.switch("r1")
    assert result["outcome"] == "switched" and not result.get("cold_restarts")
    assert node.serves() == R1
    logs = "\n".join(node.kube.logs(NS, r1_pod["metadata"]["name"], container="vllm", tail=200))
    steps = []
    for line in logs.splitlines():
        for marker in ("tags: ['weights']", "Reloading weights", "tags: ['kv_cache']"):
            if marker in line:
                steps.append(marker)
    assert steps[-3:] == ["tags: ['weights']", "Reloading weights", "tags: ['kv_cache']"], logs
    # the completion the switcher sent answered from reloaded weights, not from the unmapped ones
    assert result["health"]["vllm-r1"]["ready"] is True


def test_a_mode_that_keeps_more_pods_than_the_node_has_gpus_for_is_refused_before_any_change(
        kube_api, kubeconfig, collection_kube, fake_nvml_lib, tmp_path):
    spec = NodeSpec(name=NODE)  # one RTX 3060, not time-sliced: one nvidia.com/gpu
    with KubeletSimulator(kube_api.url, nodes=[spec], time_scale=SCALE, state_dir=tmp_path / "cluster",
                          vllm_load_seconds=20) as sim:
        k8s.apply_all(collection_kube, standby_manifests())
        node = Node(sim, collection_kube, kubeconfig, fake_nvml_lib, tmp_path, NODE, NS)
        code, _out, err = node.run("ml")
        assert code == 2, err
        assert ("mode ml keeps 2 pods resident (vllm-ml awake, vllm-r1 asleep) requesting 2 nvidia.com/gpu, but the "
                "node advertises 1: time-slice its GPU into at least 2") in err
        assert node.replicas() == {"vllm-ml": 0, "vllm-r1": 0} and node.recorded()[0] is None
    assert not sim.errors, sim.errors


def test_a_sleepers_pod_that_was_recreated_is_put_back_asleep_by_the_active_mode(node):
    # r1's pod is replaced (evicted, deleted by hand): the new one starts awake, needs its whole share beside
    # the awake ml and cannot have it; `gpu-mode ml` stops it, puts ml to sleep, starts r1 alone, puts it to
    # sleep and wakes ml again
    (old,) = node.pods("vllm-r1")
    node.kube.delete("v1", "Pod", old["metadata"]["name"], NS)
    result, _err = node.switch("ml", timeout=180)
    assert result["outcome"] == "switched"
    assert result["plan"]["stop"] == ["vllm-r1"] and result["plan"]["standby_start"] == ["vllm-r1"]
    assert result["plan"]["sleep"] == ["vllm-ml"] and result["plan"]["wake"] == {"vllm-ml": 1}
    assert states(node) == {"vllm-ml": "awake", "vllm-r1": "asleep"} and node.serves() == QWEN
    (new,) = node.pods("vllm-r1")
    assert new["metadata"]["uid"] != old["metadata"]["uid"]


def test_standby_switches_work_with_the_nodes_own_credentials(node, kube_api, collection_kube, fake_nvml_lib,
                                                              tmp_path):
    """The access a node with standby modes gets (module_utils/gpu_mode/access.py) is enough for sleep and wake
    (POST through the pod proxy: verb create on pods/proxy) and the standby fit (its own Node, cluster-scoped:
    a ClusterRole); a node without standby gets neither, and removal takes the cluster-scoped part away."""
    granted = access.ensure(collection_kube, NODE, NS, collection_kube.api.configuration.host)
    # written by hand: the sleep/wake POSTs need create on pods/proxy; RBAC cannot name ReplicaSet pods
    assert {"apiGroups": [""], "resources": ["pods/proxy"], "verbs": ["create"]} in granted["rules"]
    cluster_role = collection_kube.get("rbac.authorization.k8s.io/v1", "ClusterRole", "gpu-mode-" + NODE)
    assert cluster_role["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "resourceNames": [NODE],
                                      "verbs": ["get"]}]
    kubeconfig = tmp_path / "node.kubeconfig"
    kubeconfig.write_text(granted["kubeconfig"])
    (tmp_path / "own").mkdir()
    own = Node(node.sim, collection_kube, kubeconfig, fake_nvml_lib, tmp_path / "own", NODE, NS)
    denials = world.Denials(kube_api)
    for mode in ("r1", "ml"):
        result, _err = own.switch(mode)
        assert result["outcome"] == "switched" and result["plan"]["wake"], result
    assert denials.of("system:serviceaccount:ml:gpu-mode-" + NODE) == []
    assert states(node) == {"vllm-ml": "awake", "vllm-r1": "asleep"}
    # the fit read the node's GPU slots (not "the Node cannot be read")
    assert "cannot be read" not in json.dumps(result), result
    without = access.rules(NODE, ["vllm-ml", "vllm-r1"])
    assert not [r for r in without if "create" in r["verbs"] and r["resources"] == ["pods/proxy"]]
    removed = access.remove(collection_kube, NODE, NS)
    assert ("ClusterRole", "deleted") in [(o["kind"], o["action"]) for o in removed["objects"]]
    assert collection_kube.get("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "gpu-mode-" + NODE) is None
