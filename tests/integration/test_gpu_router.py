"""The GPU router in the simulated cluster, called with the official `openai` client: requests pick the model,
the router switches the node's mode (the gpu_mode switch, under the node's Lease, with the memory wait) and
forwards. The router runs as its pod's own process with its ServiceAccount's token (RBAC of the fake API),
the node's NVML and /proc (tests/harness/kubelet/programs/python_module.py)."""

import pytest

from tests.harness.gpu_router_cluster import ML_MODEL, NS, R1_MODEL, start_cluster

openai = pytest.importorskip("openai")

SCALE = 0.05  # a 20 s model load lasts 1 s, a 1 s probe period 50 ms

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(kube_api, collection_kube, kubeconfig, fake_nvml_lib, tmp_path):
    sim, the_cluster = start_cluster(kube_api, collection_kube, kubeconfig, fake_nvml_lib, tmp_path, SCALE)
    try:
        yield the_cluster
    finally:
        sim.stop()
    assert not sim.errors, sim.errors


def client(url, **kwargs):
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60, **kwargs)


def test_a_request_for_another_mode_switches_the_node_and_is_answered(cluster):
    (url,) = cluster.deploy_router(replicas=1)
    api = client(url)
    first = api.chat.completions.create(model="vllm-qwen", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert first.model == "vllm-qwen" and cluster.replicas() == {"vllm-ml": 1, "vllm-r1": 0}
    answer = api.chat.completions.create(model=R1_MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert answer.model == R1_MODEL and answer.choices[0].message.content
    assert cluster.replicas() == {"vllm-ml": 0, "vllm-r1": 1}
    mode, history = cluster.recorded()
    assert mode == "r1" and history[0]["from"] == "ml" and history[0]["outcome"] == "switched"
    assert history[0]["by"].startswith("gpu-router/gpu-router-k3s-gpu-worker-")
    listed = dict((m.id, m) for m in api.models.list().data)
    assert listed[R1_MODEL].state == "loaded" and listed["vllm-r1"].state == "loaded"
    assert listed[ML_MODEL].state == "stopped" and listed[ML_MODEL].mode == "ml"
