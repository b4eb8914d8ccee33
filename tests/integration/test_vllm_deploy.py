"""baremetal.gpu.vllm_deploy and plugins/module_utils/kube.py against the fake Kubernetes API, the
kubelet simulator and fake vLLM servers started from each pod's real container args.

The manifests are the vllm role's, rendered by ansible-playbook from the home-lab inventory (the role's
render entry point, tests/harness/role_render.py)."""

import copy
import json
import pathlib
import time

import pytest
import yaml

from ansible_collections.baremetal.gpu.plugins.module_utils import kube as k8s
from tests.harness.ansible_cli import kube_env, run_tool
from tests.harness.kubelet import LOGIC_TEST_TIME_SCALE, KubeletSimulator, NodeSpec
from tests.harness.role_render import render

ROOT = pathlib.Path(__file__).resolve().parents[2]
HOMELAB = yaml.safe_load((ROOT / "inventories" / "homelab" / "group_vars" / "all.yml").read_text())
# The module under test, not the GPU modes: the home lab's two entries as plain workloads, ml running and
# r1 at 0 (what a switch to ml leaves), so the role's manifests carry the replicas themselves.
HOMELAB["vllm_catalog"][1]["replicas"] = 0


@pytest.fixture
def behaviour():
    """Per Deployment name: FakeVLLMServer keyword arguments for its pods (durations simulated)."""
    return {}


@pytest.fixture
def cluster(kube_api, collection_kube, behaviour):
    """The fake API plus a kubelet simulator (time scale 0.05) whose pods run the fake vLLM from their container
    args, loading for 2 s (simulated; 0.1 s real)."""

    def overrides(ctx):
        return behaviour.get(ctx.pod["metadata"]["labels"].get("app.kubernetes.io/instance", ""), {})

    with KubeletSimulator(kube_api.url, nodes=[NodeSpec(name="k3s-gpu-worker")], time_scale=LOGIC_TEST_TIME_SCALE,
                          vllm_load_seconds=2, vllm_overrides=overrides) as sim:
        yield collection_kube
    assert not sim.errors, sim.errors


_RENDERED = {}


def manifests(**overrides):
    """The home lab's manifests with extra vars, rendered once per distinct set of overrides (no GPU modes:
    see HOMELAB)."""
    overrides = dict({"vllm_gpu_nodes": [], "vllm_catalog": HOMELAB["vllm_catalog"]}, **overrides)
    key = json.dumps(overrides, sort_keys=True)
    if key not in _RENDERED:
        _RENDERED[key] = render("homelab", overrides).manifests
    return copy.deepcopy(_RENDERED[key])


def deployments(applied):
    return [(o["apiVersion"], o["kind"], o["metadata"]["namespace"], o["metadata"]["name"])
            for o in applied if o["kind"] == "Deployment"]


def actions(results):
    return {"%s/%s" % (r["kind"], r["name"]): r["action"] for r in results}


# --- readiness predicates and change detection (pure) ---------------------------------------------

def test_deployment_ready_needs_the_observed_generation_and_every_replica():
    ready = {"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 1},
             "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}}
    assert k8s.READY["Deployment"](ready)
    stale = copy.deepcopy(ready)
    stale["metadata"]["generation"] = 3  # new spec the controller has not seen yet
    assert not k8s.READY["Deployment"](stale)
    old_pod_left = copy.deepcopy(ready)
    old_pod_left["status"].update(replicas=2, unavailableReplicas=1)
    assert not k8s.READY["Deployment"](old_pod_left)
    scaled_down = {"kind": "Deployment", "metadata": {"generation": 4}, "spec": {"replicas": 0},
                   "status": {"observedGeneration": 4}}
    assert k8s.READY["Deployment"](scaled_down)
    gave_up = {"status": {"conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                          "message": "ReplicaSet has timed out progressing."}]}}
    assert k8s.FAILED["Deployment"](gave_up) == "ReplicaSet has timed out progressing."


def test_changed_compares_the_server_object_not_the_request():
    live = {"kind": "Service", "metadata": {"name": "a", "resourceVersion": "5", "managedFields": [{"manager": "x"}]},
            "spec": {"ports": [{"port": 8000}]}, "status": {}}
    assert not k8s.object_changed(live, copy.deepcopy(live))
    bookkeeping = copy.deepcopy(live)
    bookkeeping["metadata"].update(resourceVersion="6", managedFields=[{"manager": "baremetal-gpu"}])
    bookkeeping["status"] = {"loadBalancer": {}}
    assert not k8s.object_changed(live, bookkeeping)
    real = copy.deepcopy(bookkeeping)
    real["spec"]["ports"][0]["port"] = 9000
    assert k8s.object_changed(live, real)
    assert k8s.object_changed(None, live)


def test_secret_values_are_masked_and_collected_for_no_log():
    secret = {"kind": "Secret", "metadata": {"name": "t"}, "data": {"token": "aGZfc2VjcmV0"}}
    assert k8s.masked(secret)["data"] == {"token": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}
    assert k8s.secret_values([secret]) == ["aGZfc2VjcmV0", "hf_secret"]


# --- against the fake API ---------------------------------------------------------------------------

def test_first_apply_creates_second_is_unchanged(cluster):
    first, applied = k8s.apply_all(cluster, manifests())
    assert set(actions(first).values()) == {"created"}
    assert all(r["changed"] for r in first)
    assert sorted(actions(first)) == ["DaemonSet/vllm-ml-prepull", "DaemonSet/vllm-r1-prepull", "Deployment/vllm-ml",
                                      "Deployment/vllm-r1", "Ingress/vllm-api", "Namespace/ml",
                                      "PodDisruptionBudget/vllm-ml", "PodDisruptionBudget/vllm-r1", "Service/vllm-api"]
    waited = k8s.wait_ready(cluster, deployments(applied), timeout=20)
    assert set(waited) == {("Deployment", "ml", "vllm-ml"), ("Deployment", "ml", "vllm-r1")}
    second = k8s.apply_all(cluster, manifests())[0]
    assert set(actions(second).values()) == {"unchanged"}
    assert not any(r["changed"] for r in second)
    live = cluster.get("apps/v1", "Deployment", "vllm-ml", "ml")
    assert [m["manager"] for m in live["metadata"]["managedFields"] if m["operation"] == "Apply"] == ["baremetal-gpu"]


def test_changed_args_roll_out_to_a_new_pod(cluster):
    applied = k8s.apply_all(cluster, manifests())[1]
    k8s.wait_ready(cluster, deployments(applied), timeout=20)
    catalog_entries = copy.deepcopy(HOMELAB["vllm_catalog"])
    catalog_entries[0]["max_model_len"] = 4096
    results, applied = k8s.apply_all(cluster, manifests(vllm_catalog=catalog_entries), want_diff=True)
    changed = {"%s/%s" % (r["kind"], r["name"]): r for r in results if r["changed"]}
    assert list(changed) == ["Deployment/vllm-ml"]
    assert changed["Deployment/vllm-ml"]["action"] == "configured"
    diff = changed["Deployment/vllm-ml"]["diff"]
    assert '"8192"' in diff["before"] and '"4096"' in diff["after"]
    k8s.wait_ready(cluster, deployments(applied), timeout=20)
    pods = cluster.items("v1", "Pod", "ml", label_selector="app.kubernetes.io/instance=vllm-ml")
    running = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    assert len(running) == 1  # Recreate: the old pod is gone, one pod owns the GPU
    args = running[0]["spec"]["containers"][0]["args"]
    assert args[args.index("--max-model-len") + 1] == "4096"
    assert k8s.pod_ready(running[0])


def test_a_crashing_workload_fails_with_its_events_and_logs(cluster, behaviour):
    behaviour["vllm-ml"] = {"load_seconds": 2, "crash_during_load": True}
    applied = k8s.apply_all(cluster, manifests())[1]
    started = time.monotonic()
    with pytest.raises(k8s.RolloutTimeout) as err:
        k8s.wait_ready(cluster, deployments(applied), timeout=1.5)
    assert time.monotonic() - started < 4
    message = str(err.value)
    assert "not ready after" in message
    assert "Deployment ml/vllm-ml: 0/1 available" in message
    assert "pod vllm-ml-" in message and "phase Running on k3s-gpu-worker" in message
    assert "container vllm: " in message and "restarts" in message
    assert "event: Warning BackOff" in message
    assert "Engine core initialization failed" in message  # the server's own last log lines
    assert "vllm-r1" not in message  # the healthy (scaled to 0) one is not blamed
    (report,) = err.value.report
    assert report["pods"][0]["logs"]


def test_a_workload_that_cannot_be_scheduled_names_the_reason(cluster):
    entries = copy.deepcopy(HOMELAB["vllm_catalog"])
    entries[0]["gpus"] = 2  # the node has one GPU
    entries[0]["tensor_parallel_size"] = 2
    applied = k8s.apply_all(cluster, manifests(vllm_catalog=entries))[1]
    with pytest.raises(k8s.RolloutTimeout) as err:
        k8s.wait_ready(cluster, deployments(applied), timeout=1.0)
    assert "FailedScheduling" in str(err.value) and "nvidia.com/gpu" in str(err.value)


def test_prune_removes_what_the_catalog_dropped_and_nothing_else(cluster):
    k8s.apply_all(cluster, manifests(vllm_hf_token="hf_prune_test_token"))
    unmanaged = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "by-hand", "namespace": "ml"}}
    cluster.apply(unmanaged, field_manager="kubectl")
    entries = copy.deepcopy(HOMELAB["vllm_catalog"])
    entries[1]["enabled"] = False
    wanted = manifests(vllm_catalog=entries)
    applied = k8s.apply_all(cluster, wanted)[1]
    pruned = k8s.prune(cluster, applied, {"ml"})
    assert sorted("%s/%s" % (p["kind"], p["name"]) for p in pruned) == [
        "DaemonSet/vllm-r1-prepull", "Deployment/vllm-r1", "PodDisruptionBudget/vllm-r1", "Secret/vllm-hf-token"]
    assert cluster.get("apps/v1", "Deployment", "vllm-r1", "ml") is None
    assert cluster.get("v1", "ConfigMap", "by-hand", "ml") is not None
    assert cluster.get("v1", "Namespace", "ml") is not None
    assert k8s.prune(cluster, applied, {"ml"}) == []


def test_check_mode_reports_without_changing_anything(cluster):
    planned = k8s.apply_all(cluster, manifests(), check_mode=True)[0]
    assert set(actions(planned).values()) == {"created"}
    assert cluster.get("v1", "Namespace", "ml") is None
    k8s.apply_all(cluster, manifests())
    entries = copy.deepcopy(HOMELAB["vllm_catalog"])
    entries[0]["image"] = "vllm/vllm-openai:v0.9.0"
    planned = k8s.apply_all(cluster, manifests(vllm_catalog=entries), check_mode=True, want_diff=True)[0]
    changed = [r for r in planned if r["changed"]]
    # the Deployment and the DaemonSet that pre-pulls its image
    assert [(r["kind"], r["name"], r["action"]) for r in changed] == [
        ("Deployment", "vllm-ml", "configured"), ("DaemonSet", "vllm-ml-prepull", "configured")]
    assert "vllm/vllm-openai:v0.9.0" in changed[0]["diff"]["after"]
    live = cluster.get("apps/v1", "Deployment", "vllm-ml", "ml")
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "vllm/vllm-openai:v0.8.5.post1"


def test_the_module_applies_diffs_and_never_prints_the_secret(cluster, kubeconfig):
    token = "hf_TopSecretToken4242"
    wanted = manifests(vllm_hf_token=token)
    args = {"manifests": wanted, "namespace": "ml", "prune": True, "wait_timeout": 30}
    env = dict(kube_env(kubeconfig), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    first = run_tool("ansible", "localhost", "-m", "baremetal.gpu.vllm_deploy", "-a", json.dumps(args), "--diff",
                     "-v", env=env)
    second = run_tool("ansible", "localhost", "-m", "baremetal.gpu.vllm_deploy", "-a", json.dumps(args), "--check",
                      "--diff", env=env)
    for output in (first.stdout + first.stderr, second.stdout + second.stderr):
        assert token not in output
        assert wanted[1]["data"]["token"] not in output  # nor its base64
    result = json.loads(first.stdout[first.stdout.index("{"):])["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert result["changed"] is True
    assert {r["action"] for r in result["results"]} == {"created"}
    assert set(result["rollout"]) == {"Deployment/ml/vllm-ml", "Deployment/ml/vllm-r1"}
    assert result["timings"]["apply_s"] < 2
    assert any(d["after_header"] == "Secret ml/vllm-hf-token (applied)" for d in result["diff"])
    again = json.loads(second.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert again["changed"] is False and again["pruned"] == []
    assert {r["action"] for r in again["results"]} == {"unchanged"}
