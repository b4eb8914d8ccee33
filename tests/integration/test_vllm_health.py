"""baremetal.gpu.vllm_health and plugins/module_utils/health.py against fake vLLM servers, directly
and through the fake Kubernetes API's service proxy."""

import json
import pathlib
import re
import socket
import time

import pytest

from ansible_collections.baremetal.gpu.plugins.module_utils import health
from ansible_collections.baremetal.gpu.plugins.module_utils import kube as k8s
from tests.harness.ansible_cli import kube_env, run_tool
from tests.harness.kubelet import KubeletSimulator, NodeSpec
from tests.harness.role_render import render

ROOT = pathlib.Path(__file__).resolve().parents[2]


def wait(server, **kwargs):
    return health.wait_serving(health.url_fetch(server.url), **kwargs)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_health_waits_for_a_slow_start_and_notices_within_half_a_second(fake_vllm):
    load = 1.0
    started = time.monotonic()
    server = fake_vllm(served_model_names=("vllm-qwen",), load_seconds=load)
    result = wait(server, served_model_name="vllm-qwen", timeout=10)
    returned = time.monotonic() - started
    assert result["ready"] is True
    assert result["attempts"]["health"] > 1  # it really waited: refused while loading
    assert result["elapsed"]["health"] >= load - 0.1
    assert returned < load + 0.5  # detection latency under 0.5 s
    assert result["models"] == ["vllm-qwen"]
    assert set(result["elapsed"]) == {"health", "models", "total"}


def test_a_wrong_model_name_fails_at_once_naming_what_is_served(fake_vllm):
    server = fake_vllm(served_model_names=("vllm-qwen",))
    started = time.monotonic()
    with pytest.raises(health.HealthError) as err:
        wait(server, served_model_name="vllm-r1", timeout=30)
    assert time.monotonic() - started < 2
    assert "wrong model: the server lists vllm-qwen, not vllm-r1" in str(err.value)
    assert err.value.result["failed_phase"] == "models"
    assert err.value.result["last"]["status"] == 200


def test_json_health_reads_the_field_not_just_the_status(fake_vllm):
    # A service that answers 200 while loading and says so only in the body (the TTS service of
    # docs/reference-deployments.md).
    server = fake_vllm(health_mode="json", load_seconds=0.8, listen_during_load=True, json_loading_status=200)
    result = wait(server, kind="json", field="ready", value=True, check_models=False, timeout=10)
    assert result["elapsed"]["health"] >= 0.6
    assert json.loads(result["last"]["body"]) == {"status": "healthy", "ready": True}
    early = fake_vllm(health_mode="json", load_seconds=5, listen_during_load=True, json_loading_status=200)
    plain = wait(early, kind="vllm", check_models=False, timeout=5)  # a status-only check is fooled
    assert plain["elapsed"]["health"] < 4  # answered long before the 5 s load ended
    with pytest.raises(health.HealthError) as err:
        wait(early, kind="json", field="status", value=["healthy", "ok"], check_models=False, timeout=0.6)
    assert 'status is "initializing", not "healthy" or "ok"' in err.value.result["last"]["why"]


def test_a_server_that_never_gets_healthy_times_out_with_what_it_saw(fake_vllm):
    server = fake_vllm(hang=True, listen_during_load=True)
    started = time.monotonic()
    with pytest.raises(health.HealthError) as err:
        wait(server, served_model_name="x", timeout=1.0, interval=0.2)
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 3  # the deadline holds (upper bound loose: a loaded 2-core CI box)
    assert re.search(r"not healthy \(status 503\) after \d+\.\d s in phase health; last answer to /health: status 503",
                     str(err.value)), str(err.value)
    assert err.value.result["attempts"]["health"] >= 5


def test_nothing_listening_and_the_interval_never_exceeds_half_a_second():
    url = "http://127.0.0.1:%d" % free_port()
    with pytest.raises(health.HealthError) as err:
        health.wait_serving(health.url_fetch(url), timeout=1.2, interval=5)
    assert "no answer" in str(err.value) and "refused" in str(err.value)
    assert err.value.result["attempts"]["health"] >= 3


def test_one_tiny_completion_proves_inference_and_is_timed(fake_vllm):
    server = fake_vllm(served_model_names=("vllm-qwen",), response_delay=0.15)
    result = wait(server, served_model_name="vllm-qwen", inference=True, timeout=10)
    assert result["inference"]["latency_s"] >= 0.15
    assert result["inference"]["text"]
    assert result["inference"]["usage"]["completion_tokens"] == 1
    assert set(result["elapsed"]) == {"health", "models", "inference", "total"}


# --- through the API server's service proxy -----------------------------------------------------------

@pytest.fixture
def homelab_cluster(kube_api, kubeconfig):
    """The home-lab manifests applied to the fake API; its pods load for 20 s simulated (1 s real at scale 0.05)."""
    with KubeletSimulator(kube_api.url, nodes=[NodeSpec(name="k3s-gpu-worker")], time_scale=0.05,
                          vllm_load_seconds=20) as sim:
        kube = k8s.Kube.from_params({"kubeconfig": kubeconfig})
        manifests = render("homelab").manifests
        k8s.apply_all(kube, manifests)
        # mode ml, as a switch leaves it: the switcher's field manager owns the mode-bound replicas
        kube.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "vllm-ml", "namespace": "ml"},
                    "spec": {"replicas": 1}}, field_manager="baremetal-gpu-mode", force=True)
        try:
            yield kube
        finally:
            kube.close()
    assert not sim.errors, sim.errors


def test_through_the_service_proxy_it_waits_for_the_pod_to_load(homelab_cluster):
    started = time.monotonic()
    fetch = health.proxy_fetch(homelab_cluster, "ml", "vllm-api", 8000)
    result = health.wait_serving(fetch, served_model_name="vllm-qwen", inference=True, timeout=15)
    assert result["where"] == "service ml/vllm-api port 8000 through the API proxy"
    assert result["elapsed"]["health"] >= 0.9 and time.monotonic() - started < 5
    assert result["models"] == ["Qwen/Qwen3-8B-AWQ", "vllm-qwen"] and result["inference"]["latency_s"] < 1


def test_the_module_reports_the_pods_behind_the_service_on_failure(homelab_cluster, kubeconfig):
    args = {"service": "vllm-api", "namespace": "ml", "port": "8000", "served_model_name": "vllm-r1", "timeout": 15}
    env = dict(kube_env(kubeconfig), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    run = run_tool("ansible", "localhost", "-m", "baremetal.gpu.vllm_health", "-a", json.dumps(args), env=env,
                   check=False)
    result = json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert result["failed"] is True and result["failed_phase"] == "models"
    assert "wrong model: the server lists Qwen/Qwen3-8B-AWQ, vllm-qwen, not vllm-r1" in result["msg"]
    assert result["pods"].startswith("pod vllm-ml-") and "Running ready" in result["pods"]
    assert result["last"]["status"] == 200 and "Qwen/Qwen3-8B-AWQ" in result["last"]["body"]
