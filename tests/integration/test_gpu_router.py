"""The GPU router in the simulated cluster, called with the official `openai` client: requests pick the model,
the router switches the node's mode (the gpu_mode switch, under the node's Lease, with the memory wait) and
forwards. The router runs as its pod's own process with its ServiceAccount's token (RBAC of the fake API),
the node's NVML and /proc (tests/harness/kubelet/programs/python_module.py)."""

import json
import threading
import time
import urllib.request

import pytest

from tests.harness.gpu_mode_cluster import Denials
from tests.harness.gpu_mode_node import marked
from tests.harness.gpu_router_cluster import ML_MODEL, NODE, NS, R1_MODEL, start_cluster

openai = pytest.importorskip("openai")

SCALE = 0.05  # a 20 s model load lasts 1 s, a 1 s probe period 50 ms

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(kube_api, collection_kube, kubeconfig, fake_nvml_lib, tmp_path, request):
    """Mark ``faults(deployment={FakeVLLMServer keywords})`` changes the fake vLLM of a Deployment's pods."""
    faults = marked(request, "faults")

    def overrides(ctx):
        return faults.get(ctx.pod["metadata"]["labels"].get("app.kubernetes.io/instance", ""), {})

    denials = Denials(kube_api)
    sim, the_cluster = start_cluster(kube_api, collection_kube, kubeconfig, fake_nvml_lib, tmp_path, SCALE,
                                     vllm_overrides=overrides)
    the_cluster.denials = denials
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


ROUTER_USER = "system:serviceaccount:%s:gpu-router-%s" % (NS, NODE)
HI = [{"role": "user", "content": "hi"}]


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status, json.loads(answer.read())


def wait_for(condition, timeout, what):
    """Harness-side wait for a cluster condition (outside the product: polled with a deadline)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


def ask(url, model, results, key, **kwargs):
    try:
        answer = client(url).chat.completions.create(model=model, messages=HI, max_tokens=kwargs.pop("max_tokens", 4),
                                                     **kwargs)
        results[key] = answer.model
    except Exception as exc:  # pylint: disable=broad-except  # recorded, asserted by the test
        results[key] = exc


def test_concurrent_requests_for_two_models_one_switch_at_a_time_none_lost(cluster):
    (url,) = cluster.deploy_router(replicas=1)
    results = {}
    threads = []
    for i in range(6):
        model = R1_MODEL if i % 2 == 0 else "vllm-qwen"
        threads.append(threading.Thread(target=ask, args=(url, model, results, (i, model))))
    for thread in threads:
        thread.start()
        time.sleep(0.01)  # arrival order: r1, ml, r1, ml, ...
    for thread in threads:
        thread.join(60)
    assert len(results) == 6 and all(answer == key[1] for key, answer in results.items()), results
    _mode, history = cluster.recorded()
    switches = [h for h in reversed(history) if h["outcome"] == "switched" and h["by"].startswith("gpu-router/")]
    # FIFO: the oldest waiting request (r1) switches first, then the ml ones switch back; never two at once
    assert [(h["from"], h["to"]) for h in switches] == [("ml", "r1"), ("r1", "ml")]
    assert switches[0]["finished_at"] <= switches[1]["started_at"]
    ledger = cluster.sim.ledger(NODE)
    assert ledger.used_mib(0) <= ledger.devices[0].total_mib


def test_idle_ttl_returns_the_node_to_its_default_mode(cluster):
    (url,) = cluster.deploy_router({"ttl": {"r1": 1.0}}, replicas=1)
    assert client(url).chat.completions.create(model="vllm-r1", messages=HI, max_tokens=2).model == "vllm-r1"
    assert cluster.recorded()[0] == "r1"
    wait_for(lambda: cluster.recorded()[0] == "ml", 30, "the default mode after the TTL")
    _mode, history = cluster.recorded()
    assert (history[0]["from"], history[0]["to"], history[0]["outcome"]) == ("r1", "ml", "switched")
    wait_for(lambda: get_json(url + "/healthz")[1]["active"] == "ml", 10, "the router to follow")
    status, body = get_json(url + "/healthz")
    assert body["last_switch"]["why"] == "idle" and body["last_switch"]["to"] == "ml"


@pytest.mark.faults(**{"vllm-r1": {"crash_during_load": True}})
def test_a_failing_target_is_rolled_back_and_answered_503_while_the_previous_mode_serves(cluster):
    (url,) = cluster.deploy_router(replicas=1)
    with pytest.raises(openai.InternalServerError) as failed:
        client(url).chat.completions.create(model="vllm-r1", messages=HI, max_tokens=2)
    assert failed.value.status_code == 503
    assert int(failed.value.response.headers["Retry-After"]) >= 1
    error = failed.value.body
    assert error["code"] == "model_switch_failed" and error["param"] == "model"
    assert "The model `vllm-r1` could not be loaded (switch to GPU mode r1 failed)" in error["message"]
    assert "rolled back to mode ml" in error["message"] and "exited with code 1" in error["message"]
    assert cluster.replicas() == {"vllm-ml": 1, "vllm-r1": 0}
    assert client(url).chat.completions.create(model="vllm-qwen", messages=HI, max_tokens=2).model == "vllm-qwen"
    with pytest.raises(openai.InternalServerError) as again:  # within failure_backoff: at once, no new switch
        client(url).chat.completions.create(model="vllm-r1", messages=HI, max_tokens=2)
    assert again.value.body["code"] == "model_switch_failed"
    assert [h["outcome"] for h in cluster.recorded()[1]].count("rolled back") == 1


def normalised(raw):
    import re

    raw = re.sub(rb'"id": ?"(chat)?cmpl-[0-9a-f]+"', b'"id":"X"', raw)
    return re.sub(rb'"created": ?[0-9]+', b'"created":0', raw)


def test_streaming_passes_through_byte_for_byte(cluster):
    (url,) = cluster.deploy_router(replicas=1)
    direct_url = cluster.model_pod_url("vllm-ml")
    request = dict(model="vllm-qwen", messages=HI, max_tokens=12, stream=True)
    with client(direct_url).chat.completions.with_streaming_response.create(**request) as direct:
        direct_bytes = b"".join(direct.iter_bytes())
    with client(url).chat.completions.with_streaming_response.create(**request) as routed:
        assert routed.headers["content-type"].startswith("text/event-stream")
        routed_bytes = b"".join(routed.iter_bytes())
    assert routed_bytes.count(b"data: ") > 12 and routed_bytes.endswith(b"data: [DONE]\n\n")
    assert normalised(routed_bytes) == normalised(direct_bytes)
    chunks = list(client(url).chat.completions.create(**request))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_two_router_replicas_share_the_lease_and_follow_the_recorded_mode(cluster):
    first, second = cluster.deploy_router()
    results = {}
    threads = [threading.Thread(target=ask, args=(u, R1_MODEL, results, (u, i))) for i, u in
               enumerate([first, second, first, second])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert list(results.values()) == [R1_MODEL] * 4, results
    _mode, history = cluster.recorded()
    assert [(h["from"], h["to"], h["outcome"]) for h in history if h["to"] == "r1"] == [("ml", "r1", "switched")]
    for url in (first, second):
        wait_for(lambda u=url: get_json(u + "/healthz")[1]["active"] == "r1", 10, "both replicas on r1")
    assert client(second).chat.completions.create(model="vllm-r1", messages=HI, max_tokens=2).model == "vllm-r1"


@pytest.mark.faults(**{"vllm-ml": {"token_delay": 10}})
def test_unknown_model_is_404_and_requests_beyond_the_queue_are_429(cluster):
    (url,) = cluster.deploy_router({"concurrency": {"ml": 1}, "queue_size": 1}, replicas=1)
    with pytest.raises(openai.NotFoundError) as unknown:
        client(url).chat.completions.create(model="gpt-4o", messages=HI)
    assert unknown.value.body["code"] == "model_not_found"
    assert "Servable models: Qwen/Qwen3-8B-AWQ, casperhansen/deepseek-r1-distill-qwen-7b-awq, vllm-qwen, vllm-r1" \
        in unknown.value.body["message"]
    results = {}
    slow = [threading.Thread(target=ask, args=(url, "vllm-qwen", results, i), kwargs={"max_tokens": 2})
            for i in range(2)]
    for thread in slow:  # one in flight (about 1 s), one waiting
        thread.start()
    wait_for(lambda: get_json(url + "/healthz")[1]["waiting"] == 1, 10, "one request waiting")
    with pytest.raises(openai.RateLimitError) as limited:
        client(url).chat.completions.create(model="vllm-qwen", messages=HI, max_tokens=2)
    assert limited.value.body["code"] == "queue_full"
    for thread in slow:
        thread.join(30)
    assert results == {0: "vllm-qwen", 1: "vllm-qwen"}
    with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    assert 'gpu_router_rejected_requests_total{reason="queue_full"} 1' in text
    assert 'gpu_router_rejected_requests_total{reason="unknown_model"} 1' in text


def test_the_routers_role_is_sufficient_and_minimal(cluster, kube_api, kubeconfig_for):
    (url,) = cluster.deploy_router(replicas=1)
    assert client(url).chat.completions.create(model="vllm-r1", messages=HI, max_tokens=2).model == "vllm-r1"
    assert cluster.recorded()[0] == "r1"
    assert cluster.denials.of(ROUTER_USER) == []  # every request of the switch was allowed
    from ansible_collections.baremetal.gpu.plugins.module_utils import kube as k8s

    router = k8s.Kube.from_params({"kubeconfig": kubeconfig_for(NS, "gpu-router-" + NODE)})
    refused = []
    attempts = [
        ("PATCH", "/apis/apps/v1/namespaces/%s/deployments/gpu-router-%s" % (NS, NODE), {"spec": {"replicas": 5}}),
        ("PATCH", "/api/v1/namespaces/%s/configmaps/gpu-router-%s" % (NS, NODE), {"data": {"x": "y"}}),
        ("PATCH", "/api/v1/namespaces/%s/services/vllm-api" % NS, {"spec": {"selector": {"a": "b"}}}),
        ("GET", "/api/v1/namespaces/%s/secrets" % NS, None),
        ("DELETE", "/apis/apps/v1/namespaces/%s/deployments/vllm-ml" % NS, None),
        ("POST", "/api/v1/namespaces/%s/configmaps" % NS, {"metadata": {"name": "x"}, "data": {}}),
    ]
    for method, path, body in attempts:
        with pytest.raises(k8s.KubeError) as denied:
            router.request(method, path, body=body, content_type="application/merge-patch+json"
                           if method == "PATCH" else None)
        refused.append(denied.value.status)
    assert refused == [403] * len(attempts)
    router.close()


def test_a_router_without_the_nvidia_runtime_cannot_switch_and_says_why(cluster):
    (url,) = cluster.deploy_router(replicas=1, runtime_class="")
    with pytest.raises(openai.InternalServerError) as failed:
        client(url).chat.completions.create(model="vllm-r1", messages=HI, max_tokens=2)
    # the container has no NVML (no driver library without the NVIDIA runtime): the switch's checks refuse
    assert "switch to GPU mode r1 failed" in failed.value.body["message"]
    assert "no NVIDIA driver installed" in failed.value.body["message"]
    assert cluster.replicas() == {"vllm-ml": 1, "vllm-r1": 0} and cluster.recorded()[0] == "ml"
