"""vLLM sleep mode in the fake, per release: dev-mode routes, --enable-sleep-mode, levels, tags, reload, the
residue held while asleep (the weights too on 0.14 .. 0.16), inference while asleep, and waking while a peer holds the
memory.

RTX 3060 (12288 MiB) with Qwen3-8B-AWQ at 0.9 holds 500 + 11059 = 11559 MiB when awake (0.9.1+); the weights
are 5836 MiB; asleep it keeps the residue, 1218 MiB by default (1.19 GiB, the figure vLLM logged in
vllm-project/vllm#28714).
"""

import json
import time

import pytest

from tests.harness.fake_vllm.client import Background, call, chat, metric, wait_for

FAST = 0.01
DEV = {"VLLM_SERVER_DEV_MODE": "1"}
AWAKE, WEIGHTS, RESIDUE = 11559, 5836, 1218


def post(server, path, body=None):
    return call("POST", server.url + path, body)


def sleeper(fake_vllm, gpu_node, version="0.33.0", enable=True, env=None, **kwargs):
    node = gpu_node("NVIDIA-GeForce-RTX-3060")
    options = dict(model="Qwen/Qwen3-8B-AWQ", served_model_names=("qwen",), max_model_len=8192, gpu=node.claim(),
                   version=version, env=DEV if env is None else env, enable_sleep_mode=enable, time_scale=FAST)
    options.update(kwargs)
    server = fake_vllm(**options)
    assert server.wait_healthy(5)
    # before 0.9.1 the share is the device filled up to 0.9, reserved memory included: 11059 - 250 = 10809
    assert node.used_mib() == (10809 if version == "0.8.5.post1" else AWAKE)
    return server, node


def is_sleeping(server):
    status, _h, raw = call("GET", server.url + "/is_sleeping")
    assert status == 200
    return json.loads(raw)["is_sleeping"]


def test_dev_routes_exist_only_with_vllm_server_dev_mode(fake_vllm, gpu_node):
    server, node = sleeper(fake_vllm, gpu_node, env={})
    for method, path in (("POST", "/sleep?level=1"), ("POST", "/wake_up"), ("GET", "/is_sleeping"),
                         ("POST", "/collective_rpc"), ("POST", "/reset_prefix_cache")):
        status, _h, raw = call(method, server.url + path)
        assert (status, json.loads(raw)) == (404, {"detail": "Not Found"})
    assert node.used_mib() == AWAKE
    zero = fake_vllm(env={"VLLM_SERVER_DEV_MODE": "0"})
    assert zero.wait_healthy(5) and call("GET", zero.url + "/is_sleeping")[0] == 404


def test_level_1_keeps_the_residue_and_wake_up_restores_everything(fake_vllm, gpu_node):
    server, node = sleeper(fake_vllm, gpu_node, version="0.13.0", sleep_seconds=30, wake_seconds=20)
    assert is_sleeping(server) is False
    started = time.monotonic()
    status, _h, raw = post(server, "/sleep?level=1", {"level": 2})  # the JSON body is ignored
    assert (status, raw) == (200, b"") and time.monotonic() - started >= 0.3  # 30 simulated seconds
    assert is_sleeping(server) is True
    assert node.used_mib() == RESIDUE
    assert server.memory.host_weights_mib == WEIGHTS  # level 1: the weights wait in host RAM
    text = call("GET", server.url + "/metrics")[2].decode()
    labels = {"engine": 0, "model_name": "qwen"}
    assert metric(text, "vllm:engine_sleep_state", sleep_state="weights_offloaded", **labels) == 1.0
    assert metric(text, "vllm:engine_sleep_state", sleep_state="awake", **labels) == 0.0
    assert call("GET", server.url + "/health")[0] == 200  # health does not tell a sleeper apart
    started = time.monotonic()
    assert post(server, "/wake_up")[0] == 200 and time.monotonic() - started >= 0.2
    assert is_sleeping(server) is False and node.used_mib() == AWAKE
    assert chat(server.url, "qwen")[0] == 200
    assert any("Sleep mode freed 10.10 GiB memory, 1.19 GiB memory is still in use." in line for line in server.logs())


@pytest.mark.parametrize("version", ["0.14.0", "0.16.0"])
def test_0_14_to_0_16_keep_the_weights_on_the_gpu_while_asleep(fake_vllm, gpu_node, version):
    # their load_model() loads the weights outside the sleep-mode pool: a sleep frees the KV cache only
    server, node = sleeper(fake_vllm, gpu_node, version=version)
    assert post(server, "/sleep?level=1")[0] == 200 and is_sleeping(server) is True
    assert node.used_mib() == RESIDUE + WEIGHTS and server.memory.host_weights_mib == 0
    assert post(server, "/wake_up")[0] == 200 and node.used_mib() == AWAKE
    assert chat(server.url, "qwen")[0] == 200


def test_without_enable_sleep_mode_sleep_answers_200_and_frees_nothing(fake_vllm, gpu_node):
    server, node = sleeper(fake_vllm, gpu_node, enable=False, version="0.15.1")
    assert post(server, "/sleep?level=1")[0] == 200
    assert is_sleeping(server) is True
    assert node.used_mib() == AWAKE
    assert any("Sleep mode freed 0.00 GiB memory" in line for line in server.logs())
    assert chat(server.url, "qwen")[0] == 200  # before 0.17 nothing stops the scheduler, and no memory is gone


def test_level_2_wakes_weights_then_reload_then_kv_cache(fake_vllm, gpu_node):
    server, node = sleeper(fake_vllm, gpu_node, version="0.29.0")
    assert post(server, "/sleep?level=2")[0] == 200
    assert node.used_mib() == RESIDUE and server.memory.host_weights_mib == 0
    assert post(server, "/wake_up?tags=weights")[0] == 200
    assert node.used_mib() == RESIDUE + WEIGHTS and is_sleeping(server) is True
    status, _h, raw = post(server, "/collective_rpc", {"method": "reload_weights"})
    assert (status, json.loads(raw)) == (200, {"results": [None]})
    assert post(server, "/wake_up?tags=kv_cache")[0] == 200
    assert is_sleeping(server) is False and node.used_mib() == AWAKE
    reply = json.loads(chat(server.url, "qwen")[2])["choices"][0]["message"]["content"]
    assert reply.startswith("This is a fake vLLM reply")


def test_level_2_without_reload_answers_garbage(fake_vllm, gpu_node):
    server, _node = sleeper(fake_vllm, gpu_node, version="0.29.0")
    assert post(server, "/sleep?level=2")[0] == 200
    assert post(server, "/wake_up")[0] == 200
    reply = json.loads(chat(server.url, "qwen")[2])["choices"][0]["message"]["content"]
    assert set(reply.split()) == {"!"}


def test_collective_rpc_needs_a_method_and_exists_from_0_10_2(fake_vllm, gpu_node):
    old, _node = sleeper(fake_vllm, gpu_node, version="0.10.1")
    assert post(old, "/collective_rpc", {"method": "reload_weights"})[0] == 404
    new, _node = sleeper(fake_vllm, gpu_node, version="0.10.2")
    status, _h, raw = post(new, "/collective_rpc", {"args": []})
    assert (status, json.loads(raw)) == (400, {"error": {"message": "Missing 'method' in request body",
                                                         "type": "Bad Request", "param": None, "code": 400}})


@pytest.mark.parametrize("version", ["0.8.5.post1", "0.15.1"])
def test_before_0_17_a_request_while_asleep_kills_the_engine(fake_vllm, gpu_node, version):
    server, _node = sleeper(fake_vllm, gpu_node, version=version)
    assert post(server, "/sleep?level=1")[0] == 200
    status, _h, raw = chat(server.url, "qwen")
    assert (status, raw) == (500, b"")
    assert any("CUDA error: an illegal memory access was encountered" in line for line in server.logs())
    assert server.wait_exit(2) == 0  # the watchdog ends the server; vLLM exits 0 (vllm-project/vllm#48966)


def test_from_0_17_requests_wait_while_asleep_and_run_after_wake_up(fake_vllm, gpu_node):
    server, _node = sleeper(fake_vllm, gpu_node, version="0.17.0")
    assert post(server, "/sleep?level=1")[0] == 200
    request = Background("POST", server.url + "/v1/completions", {"model": "qwen", "prompt": "a"})
    wait_for(lambda: metric(call("GET", server.url + "/metrics")[2].decode(), "vllm:num_requests_waiting",
                            engine=0, model_name="qwen") == 1.0)
    time.sleep(0.1)
    assert request.result is None  # still waiting
    assert post(server, "/wake_up")[0] == 200
    status, _h, raw = request.join()
    assert status == 200 and json.loads(raw)["choices"][0]["finish_reason"] == "stop"


def test_0_17_to_0_23_resume_after_a_partial_wake_and_crash(fake_vllm, gpu_node):
    server, _node = sleeper(fake_vllm, gpu_node, version="0.20.0")
    assert post(server, "/sleep?level=1")[0] == 200
    assert post(server, "/wake_up?tags=weights")[0] == 200  # the KV cache is still unmapped
    status, _h, raw = chat(server.url, "qwen")
    assert status == 500 and json.loads(raw)["error"]["type"] == "InternalServerError"
    fixed, _node = sleeper(fake_vllm, gpu_node, version="0.24.0")
    assert post(fixed, "/sleep?level=1")[0] == 200
    assert post(fixed, "/wake_up?tags=weights")[0] == 200
    request = Background("POST", fixed.url + "/v1/completions", {"model": "qwen", "prompt": "a"})
    time.sleep(0.1)
    assert request.result is None and fixed.poll() is None
    assert post(fixed, "/wake_up?tags=kv_cache")[0] == 200
    assert request.join()[0] == 200


def test_sleep_aborts_running_requests_from_0_17(fake_vllm, gpu_node):
    server, _node = sleeper(fake_vllm, gpu_node, version="0.17.0", token_delay=10)  # 14 tokens, 1.4 s
    request = Background("POST", server.url + "/v1/completions", {"model": "qwen", "prompt": "a"})
    wait_for(lambda: metric(call("GET", server.url + "/metrics")[2].decode(), "vllm:num_requests_running",
                            engine=0, model_name="qwen") == 1.0)
    assert post(server, "/sleep?level=1")[0] == 200
    status, _h, raw = request.join()
    assert status == 200 and json.loads(raw)["choices"][0]["finish_reason"] == "abort"


def test_waking_while_a_peer_holds_the_memory_fails_with_cuda_oom(fake_vllm, gpu_node):
    server, node = sleeper(fake_vllm, gpu_node, version="0.33.0")
    assert post(server, "/sleep?level=1")[0] == 200
    peer = node.claim(name="peer")
    node.ledger.allocate(peer.pid, 0, 8000)  # what the sleeper freed, taken by another server
    status, _h, raw = post(server, "/wake_up")
    assert (status, json.loads(raw)) == (500, {"error": {
        "message": "Call to wake_up method failed: CUDA Error: out of memory at <path>:62",
        "type": "InternalServerError", "param": None, "code": 500}})
    assert is_sleeping(server) is True
    held = node.ledger.process(server.gpu.pid).usage[0]
    assert RESIDUE < held < AWAKE  # what was mapped before the failure stays mapped
    node.exit(peer.pid)
    assert node.ledger.wait_until(lambda ledger: ledger.process(peer.pid) is None, timeout=2)
    assert post(server, "/wake_up")[0] == 200 and node.used_mib() == AWAKE


def test_wake_failure_before_0_18_is_a_plain_500(fake_vllm, gpu_node):
    server, _node = sleeper(fake_vllm, gpu_node, version="0.15.1", fail_wake=True)
    assert post(server, "/sleep?level=1")[0] == 200
    status, headers, raw = post(server, "/wake_up")
    assert (status, raw) == (500, b"Internal Server Error") and headers["Content-Type"].startswith("text/plain")
    assert any("CUDA Error: invalid argument" in line for line in server.logs())
    assert is_sleeping(server) is True


def test_0_32_answers_json_and_validates_the_level(fake_vllm, gpu_node):
    server, _node = sleeper(fake_vllm, gpu_node, version="0.32.0")
    status, _h, raw = post(server, "/sleep?level=3")
    error = json.loads(raw)["error"]
    assert status == 400 and (error["type"], error["param"]) == ("Bad Request", "query.level")
    assert "Input should be less than or equal to 2" in error["message"]
    assert json.loads(post(server, "/sleep?level=1")[2]) == {"status": "sleeping", "level": 1}
    assert json.loads(post(server, "/wake_up?tags=weights")[2]) == {"status": "sleeping", "tags": ["weights"]}
    assert json.loads(post(server, "/wake_up?tags=kv_cache")[2]) == {"status": "awake", "tags": ["kv_cache"]}


def test_sleep_routes_are_not_behind_the_api_key(fake_vllm, gpu_node):
    server, node = sleeper(fake_vllm, gpu_node, api_key="k")
    assert call("GET", server.url + "/v1/models")[0] == 401
    assert post(server, "/sleep?level=1")[0] == 200 and node.used_mib() == RESIDUE


def test_reset_prefix_cache_per_release(fake_vllm, gpu_node):
    old, _node = sleeper(fake_vllm, gpu_node, version="0.25.0")
    status, _h, raw = post(old, "/reset_prefix_cache")
    assert (status, raw) == (200, b"")
    new, _node = sleeper(fake_vllm, gpu_node, version="0.27.0")
    assert json.loads(post(new, "/reset_prefix_cache")[2]) == {"success": True}
