"""The fake vLLM server speaks vLLM's HTTP API, per release, over real sockets.

The `openai` package is not installed in this project's environment, so the client side is plain HTTP.
Expected bodies are written out from vLLM's source of the release named in each test (see
tests/harness/fake_vllm/versions.py for the file and tag of each fact).
"""

import http.client as httpclient
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error

import pytest

from tests.harness.fake_vllm import FakeVLLMServer, parse_vllm_args
from tests.harness.fake_vllm.client import Background, call, chat, metric, refused, sse_events, wait_for

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
FAST = 0.01  # time_scale of the timing tests: one simulated second lasts 10 ms


def test_models_lists_one_entry_per_served_name(fake_vllm):
    server = fake_vllm(model="Qwen/Qwen3-8B-AWQ", served_model_names=("qwen", "chat"), max_model_len=4096)
    assert server.wait_healthy(5)
    status, _headers, raw = call("GET", server.url + "/v1/models")
    doc = json.loads(raw)
    assert status == 200 and doc["object"] == "list"
    assert [m["id"] for m in doc["data"]] == ["qwen", "chat"]
    for card in doc["data"]:
        assert card["object"] == "model" and card["owned_by"] == "vllm"
        assert card["root"] == "Qwen/Qwen3-8B-AWQ" and card["parent"] is None
        assert card["max_model_len"] == 4096
        assert card["permission"][0]["object"] == "model_permission"


def test_model_path_is_the_served_name_and_max_model_len_defaults_to_the_models(fake_vllm):
    server = fake_vllm(model="/models/Qwen3-ASR-1.7B")
    assert server.wait_healthy(5)
    cards = json.loads(call("GET", server.url + "/v1/models")[2])["data"]
    assert [m["id"] for m in cards] == ["/models/Qwen3-ASR-1.7B"]
    assert cards[0]["max_model_len"] == 65536  # Qwen3-ASR's max_position_embeddings


def test_health_is_an_empty_200_and_head_is_405_like_fastapi(fake_vllm):
    server = fake_vllm()
    assert server.wait_healthy(5)
    status, headers, raw = call("GET", server.url + "/health")
    assert (status, raw, headers["Content-Length"]) == (200, b"", "0")
    status, headers, _raw = call("HEAD", server.url + "/health")
    assert status == 405 and headers["allow"] == "GET"
    assert call("GET", server.url + "/ping")[0] == 200
    assert call("POST", server.url + "/ping")[0] == 200


def test_refuses_connections_until_loaded_like_vllm(fake_vllm):
    start = time.monotonic()
    server = fake_vllm(load_seconds=50, time_scale=FAST)
    assert server.url.startswith("http://127.0.0.1:") and server.state == "loading"
    assert refused(server.url)
    assert server.poll() is None
    assert server.wait_healthy(5)
    assert time.monotonic() - start >= 0.5
    assert server.state == "ready"
    assert call("GET", server.url + "/health")[0] == 200


def test_load_time_is_simulated_seconds_times_time_scale(fake_vllm):
    start = time.monotonic()
    server = fake_vllm(load_seconds=30, time_scale=FAST)
    assert server.wait_healthy(5)
    assert 0.3 <= time.monotonic() - start < 3


def test_listen_during_load_answers_503_until_loaded(fake_vllm):
    server = fake_vllm(load_seconds=50, time_scale=FAST, listen_during_load=True, served_model_names=("qwen",))
    status, _h, raw = call("GET", server.url + "/health")
    assert (status, raw) == (503, b"")
    status, _h, raw = call("GET", server.url + "/v1/models")
    assert status == 503 and json.loads(raw)["error"]["code"] == 503
    assert chat(server.url, "qwen")[0] == 503
    assert server.wait_healthy(5)
    assert call("GET", server.url + "/health")[0] == 200


def test_json_health_mode_like_the_tts_service(fake_vllm):
    server = fake_vllm(health_mode="json", load_seconds=50, time_scale=FAST, listen_during_load=True)
    status, _h, raw = call("GET", server.url + "/health")
    assert (status, json.loads(raw)) == (503, {"status": "initializing", "ready": False})
    assert server.wait_healthy(5)
    status, _h, raw = call("GET", server.url + "/health")
    assert (status, json.loads(raw)) == (200, {"status": "healthy", "ready": True})


def test_json_health_mode_can_report_loading_only_in_the_body(fake_vllm):
    server = fake_vllm(health_mode="json", load_seconds=50, time_scale=FAST, listen_during_load=True, json_loading_status=200)
    status, _h, raw = call("GET", server.url + "/health")
    assert (status, json.loads(raw)["ready"]) == (200, False)
    assert server.wait_healthy(5)
    assert json.loads(call("GET", server.url + "/health")[2])["status"] == "healthy"


def test_crash_during_load_exits_1_with_vllms_error(fake_vllm):
    start = time.monotonic()
    server = fake_vllm(load_seconds=0.8, crash_during_load=True, listen_during_load=True)
    assert call("GET", server.url + "/health")[0] == 503
    assert server.wait_healthy(5) is False
    assert time.monotonic() - start < 2
    assert server.state == "crashed" and server.crashed and server.poll() == 1
    assert refused(server.url)
    logs = "\n".join(server.logs())
    assert "EngineCore failed to start." in logs
    assert "RuntimeError: Engine core initialization failed." in logs
    assert server.stop() == 1
    assert (server.state, server.exit_code) == ("crashed", 1)


def test_crash_message_is_configurable(fake_vllm):
    message = "RuntimeError: forward compatibility was attempted on non supported HW"
    server = fake_vllm(load_seconds=0.1, crash_during_load=True, crash_message=message)
    assert server.wait_healthy(5) is False
    assert server.logs()[-1] == message


def test_restart_after_crash_or_stop_reuses_the_port(fake_vllm):
    crashing = fake_vllm(load_seconds=0.1, crash_during_load=True)
    url = crashing.url
    assert crashing.wait_healthy(5) is False
    assert crashing.start() == url and crashing.state == "loading" and crashing.poll() is None
    assert crashing.wait_healthy(5) is False and crashing.poll() == 1
    healthy = fake_vllm()
    assert healthy.wait_healthy(5)
    healthy.stop()
    assert healthy.start() == healthy.url and healthy.wait_healthy(5)
    with pytest.raises(RuntimeError, match="already started"):
        healthy.start()


def test_hang_never_becomes_healthy(fake_vllm):
    server = fake_vllm(hang=True, listen_during_load=True)
    assert server.wait_healthy(0.4) is False
    assert server.state == "loading" and server.poll() is None
    assert call("GET", server.url + "/health")[0] == 503
    assert server.stop() == 0
    assert (server.state, server.poll()) == ("stopped", 0)


@pytest.mark.parametrize("version,health,chat_status,chat_body", [
    ("0.10.2", 500, 500, b""),  # health() lets EngineDeadError through; the handler answers an empty 500
    ("0.15.1", 503, 500, b""),
    ("0.33.0", 503, 500, {"error": {"message": "EngineCore encountered an issue. See stack trace (above) for the "
                                               "root cause.", "type": "InternalServerError", "param": None,
                                    "code": 500}}),
])
def test_dead_engine_answers_as_the_release_does(fake_vllm, version, health, chat_status, chat_body):
    server = fake_vllm(fail_health_after=30, time_scale=FAST, served_model_names=("qwen",), version=version)
    assert server.wait_healthy(5)
    wait_for(lambda: call("GET", server.url + "/health")[0] != 200)
    assert call("GET", server.url + "/health")[0] == health
    status, _h, raw = chat(server.url, "qwen")
    assert status == chat_status
    assert (json.loads(raw) if raw else raw) == chat_body


def test_response_delay_slows_requests_that_are_served_concurrently(fake_vllm):
    server = fake_vllm(response_delay=40, time_scale=FAST)  # 0.4 s real
    assert server.wait_healthy(5)
    results = []

    def probe():
        t0 = time.monotonic()
        results.append((call("GET", server.url + "/health")[0], time.monotonic() - t0))

    start = time.monotonic()
    threads = [threading.Thread(target=probe) for _probe in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert [r[0] for r in results] == [200] * 4
    assert all(elapsed >= 0.4 for _s, elapsed in results)
    assert time.monotonic() - start < 1.5  # 4 x 0.4 s in parallel, not 1.6 s in series


def test_chat_completion_is_openai_shaped_and_deterministic(fake_vllm):
    server = fake_vllm(served_model_names=("qwen",))
    assert server.wait_healthy(5)
    status, _h, raw = chat(server.url, "qwen", content="one two three")
    first = json.loads(raw)
    assert status == 200
    assert first["object"] == "chat.completion" and first["id"].startswith("chatcmpl-")
    assert first["model"] == "qwen" and isinstance(first["created"], int)
    choice = first["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "stop"
    assert first["usage"]["prompt_tokens"] == 3
    assert first["usage"]["completion_tokens"] == len(choice["message"]["content"].split())
    assert first["usage"]["total_tokens"] == 3 + first["usage"]["completion_tokens"]
    second = json.loads(chat(server.url, "qwen", content="one two three")[2])
    assert second["choices"][0]["message"]["content"] == choice["message"]["content"]
    capped = json.loads(chat(server.url, "qwen", max_tokens=2)[2])
    assert capped["choices"][0]["finish_reason"] == "length"
    assert capped["usage"]["completion_tokens"] == len(capped["choices"][0]["message"]["content"].split()) == 2


@pytest.mark.parametrize("version,body", [
    ("0.8.5.post1", {"object": "error", "message": "The model `x` does not exist.", "type": "NotFoundError",
                     "param": None, "code": 404}),
    ("0.10.0", {"object": "error", "message": "The model `x` does not exist.", "type": "NotFoundError",
                "param": None, "code": 404}),
    ("0.10.1", {"error": {"message": "The model `x` does not exist.", "type": "NotFoundError", "param": None,
                          "code": 404}}),
    ("0.15.1", {"error": {"message": "The model `x` does not exist.", "type": "NotFoundError", "param": "model",
                          "code": 404}}),
    ("0.33.0", {"error": {"message": "The model `x` does not exist. Valid aliases: qwen, chat.",
                          "type": "NotFoundError", "param": "model", "code": 404}}),
])
def test_unknown_model_gets_the_releases_404(fake_vllm, version, body):
    server = fake_vllm(served_model_names=("qwen", "chat"), version=version)
    assert server.wait_healthy(5)
    for path in ("/v1/chat/completions", "/v1/completions"):
        request = {"model": "x", "messages": [{"role": "user", "content": "a"}], "prompt": "a"}
        status, _h, raw = call("POST", server.url + path, request)
        assert (status, json.loads(raw)) == (404, body)


def test_context_length_error_like_vllm(fake_vllm):
    server = fake_vllm(served_model_names=("qwen",), max_model_len=16)
    assert server.wait_healthy(5)
    status, _h, raw = chat(server.url, "qwen", content="a b c d", max_tokens=20)
    err = json.loads(raw)["error"]
    assert status == 400 and err["type"] == "BadRequestError"
    assert "maximum context length is 16 tokens" in err["message"] and "(4 in the messages, 20 in the completion)" \
        in err["message"]


def test_bad_json_is_a_400_and_unknown_routes_fastapis_404_and_405(fake_vllm):
    server = fake_vllm()
    assert server.wait_healthy(5)
    conn = httpclient.HTTPConnection(server.url[7:], timeout=5)
    conn.request("POST", "/v1/chat/completions", body=b"{not json", headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 400 and json.loads(resp.read())["error"]["type"] == "BadRequestError"
    conn.close()
    status, _h, raw = call("GET", server.url + "/nope")
    assert (status, json.loads(raw)) == (404, {"detail": "Not Found"})
    status, _h, raw = call("POST", server.url + "/health")
    assert (status, json.loads(raw)) == (405, {"detail": "Method Not Allowed"})


def test_streaming_completions_use_sse_and_done(fake_vllm):
    server = fake_vllm(served_model_names=("qwen",))
    assert server.wait_healthy(5)
    plain = json.loads(call("POST", server.url + "/v1/completions", {"model": "qwen", "prompt": "a b"})[2])
    assert plain["object"] == "text_completion"
    status, headers, raw = call("POST", server.url + "/v1/completions",
                                {"model": "qwen", "prompt": "a b", "stream": True,
                                 "stream_options": {"include_usage": True}})
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(raw)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    assert text == plain["choices"][0]["text"]
    assert chunks[-1]["usage"] == plain["usage"]
    status, _h, raw = call("POST", server.url + "/v1/chat/completions",
                           {"model": "qwen", "stream": True, "messages": [{"role": "user", "content": "a b"}]})
    events = sse_events(raw)
    deltas = [json.loads(e)["choices"][0]["delta"] for e in events[:-1]]
    assert deltas[0]["role"] == "assistant" and events[-1] == "[DONE]"
    assert "".join(d.get("content", "") for d in deltas) == text


def test_stop_drops_open_connections(fake_vllm):
    server = fake_vllm()
    assert server.wait_healthy(5)
    conn = httpclient.HTTPConnection(server.url[7:], timeout=5)
    conn.request("GET", "/health")
    assert conn.getresponse().read() == b""
    server.stop()
    with pytest.raises((ConnectionError, httpclient.HTTPException, OSError)):
        conn.request("GET", "/health")
        conn.getresponse()
    conn.close()
    assert refused(server.url)
    assert server.logs()[-1].startswith("INFO:     Finished server process")


# --- --api-key / VLLM_API_KEY --------------------------------------------------------------------------

def test_api_key_guards_v1_only_and_accepts_bearer(fake_vllm):
    server = fake_vllm(argv=["vllm", "serve", "Qwen/Qwen3-8B-AWQ", "--served-model-name", "qwen", "--api-key",
                             "s3cret"], port=0)
    assert server.wait_healthy(5)
    for path in ("/v1/models", "/v1/nope"):
        status, _h, raw = call("GET", server.url + path)
        assert (status, json.loads(raw)) == (401, {"error": "Unauthorized"})
    status, _h, raw = chat(server.url, "qwen", headers={"Authorization": "Bearer wrong"})
    assert (status, json.loads(raw)) == (401, {"error": "Unauthorized"})
    good = {"Authorization": "Bearer s3cret"}
    assert call("GET", server.url + "/v1/models", headers=good)[0] == 200
    assert chat(server.url, "qwen", headers=good)[0] == 200
    assert call("GET", server.url + "/v1/nope", headers=good)[0] == 404
    for path in ("/health", "/metrics", "/version", "/ping"):  # not under /v1: open
        assert call("GET", server.url + path)[0] == 200


def test_api_key_from_env_and_the_cli_key_wins(fake_vllm):
    from_env = fake_vllm(env={"VLLM_API_KEY": "from-env"})
    assert from_env.wait_healthy(5)
    assert call("GET", from_env.url + "/v1/models")[0] == 401
    assert call("GET", from_env.url + "/v1/models", headers={"Authorization": "Bearer from-env"})[0] == 200
    both = fake_vllm(api_key="from-cli", env={"VLLM_API_KEY": "from-env"})
    assert both.wait_healthy(5)
    assert call("GET", both.url + "/v1/models", headers={"Authorization": "Bearer from-env"})[0] == 401
    assert call("GET", both.url + "/v1/models", headers={"Authorization": "Bearer from-cli"})[0] == 200


@pytest.mark.parametrize("version,lowercase_scheme,second_key", [
    ("0.8.5.post1", 401, 401),  # 'Bearer <key>' compared as a string; --api-key takes one key
    ("0.10.1", 401, 200),  # several keys
    ("0.11.0", 200, 200),  # scheme compared case-insensitively
])
def test_api_key_matching_per_release(fake_vllm, version, lowercase_scheme, second_key):
    server = fake_vllm(api_key=["k1", "k2"], version=version)
    assert server.wait_healthy(5)
    assert call("GET", server.url + "/v1/models", headers={"Authorization": "bearer k1"})[0] == lowercase_scheme
    assert call("GET", server.url + "/v1/models", headers={"Authorization": "Bearer k2"})[0] == second_key


def test_api_key_guards_v2_and_inference_from_0_22(fake_vllm):
    old = fake_vllm(api_key="k", version="0.20.0")
    new = fake_vllm(api_key="k", version="0.22.0")
    assert old.wait_healthy(5) and new.wait_healthy(5)
    assert call("GET", old.url + "/v2/anything")[0] == 404  # unguarded, no such route
    assert call("GET", new.url + "/v2/anything")[0] == 401


# --- /metrics ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("version,kv_gauges,sleep_gauge", [
    ("0.8.5.post1", ["vllm:gpu_cache_usage_perc"], False),
    ("0.10.0", ["vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc"], False),
    ("0.11.0", ["vllm:kv_cache_usage_perc"], False),
    ("0.15.1", ["vllm:kv_cache_usage_perc"], True),
])
def test_metric_names_per_release(fake_vllm, version, kv_gauges, sleep_gauge):
    server = fake_vllm(version=version, served_model_names=("qwen",))
    assert server.wait_healthy(5)
    status, headers, raw = call("GET", server.url + "/metrics")
    text = raw.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    types = {line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE ")}
    gauges = sorted(name for name in types if name.endswith("_usage_perc"))
    assert gauges == sorted(kv_gauges)
    assert ("vllm:engine_sleep_state" in types) is sleep_gauge
    assert types["vllm:num_requests_running"] == types["vllm:num_requests_waiting"] == "gauge"
    assert types["vllm:request_success_total"] == types["vllm:prompt_tokens_total"] == "counter"
    assert types["vllm:generation_tokens_total"] == "counter"
    assert types["vllm:time_to_first_token_seconds"] == "histogram"


def test_hidden_gpu_cache_gauge_comes_back_with_show_hidden_metrics_in_0_11(fake_vllm):
    server = fake_vllm(argv=["vllm", "serve", "m", "--show-hidden-metrics-for-version", "0.10"], port=0,
                       version="0.11.0")
    assert server.wait_healthy(5)
    text = call("GET", server.url + "/metrics")[2].decode()
    assert metric(text, "vllm:gpu_cache_usage_perc", engine=0, model_name="m") == 0.0


def test_counters_and_ttft_histogram_after_requests(fake_vllm):
    server = fake_vllm(served_model_names=("qwen", "chat"), token_delay=3, time_scale=FAST)
    assert server.wait_healthy(5)
    labels = {"engine": 0, "model_name": "qwen"}  # the first served name
    assert chat(server.url, "chat", content="one two three", max_tokens=4)[0] == 200  # 4 tokens, finish length
    # "This is a fake vLLM reply from qwen to a prompt of 2 tokens.": 14 tokens, finish stop
    assert chat(server.url, "qwen", content="a b")[0] == 200
    text = call("GET", server.url + "/metrics")[2].decode()
    assert metric(text, "vllm:prompt_tokens_total", **labels) == 5.0
    assert metric(text, "vllm:generation_tokens_total", **labels) == 18.0
    assert metric(text, "vllm:request_success_total", finished_reason="stop", **labels) == 1.0
    assert metric(text, "vllm:request_success_total", finished_reason="length", **labels) == 1.0
    assert metric(text, "vllm:request_success_total", finished_reason="abort", **labels) == 0.0
    assert metric(text, "vllm:time_to_first_token_seconds_count", **labels) == 2.0
    # first token after one token delay (30 ms): both in the 0.04 bucket, neither in 0.02
    assert metric(text, "vllm:time_to_first_token_seconds_bucket", le="0.02", **labels) == 0.0
    assert metric(text, "vllm:time_to_first_token_seconds_bucket", le="+Inf", **labels) == 2.0
    assert metric(text, "vllm:prompt_tokens_created", **labels) > 1.6e9


def test_num_requests_running_counts_a_stream_until_its_last_byte(fake_vllm):
    server = fake_vllm(served_model_names=("qwen",), token_delay=6, time_scale=FAST)  # 14 tokens: ~0.84 s
    assert server.wait_healthy(5)
    labels = {"engine": 0, "model_name": "qwen"}

    def running():
        return metric(call("GET", server.url + "/metrics")[2].decode(), "vllm:num_requests_running", **labels)

    assert running() == 0.0
    request = Background("POST", server.url + "/v1/chat/completions",
                         {"model": "qwen", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    wait_for(lambda: running() == 1.0)
    samples = []
    while request.result is None:
        samples.append(running())
        time.sleep(0.05)
    status, _h, raw = request.join()
    assert status == 200 and sse_events(raw)[-1] == "[DONE]"
    assert len(samples) >= 5 and set(samples[:-1]) == {1.0}  # busy for the whole stream
    assert running() == 0.0


def test_max_num_seqs_makes_the_rest_wait(fake_vllm):
    server = fake_vllm(served_model_names=("qwen",), token_delay=10, time_scale=FAST, max_num_seqs=1)
    assert server.wait_healthy(5)
    labels = {"engine": 0, "model_name": "qwen"}
    first = Background("POST", server.url + "/v1/completions", {"model": "qwen", "prompt": "a", "max_tokens": 4})
    second = Background("POST", server.url + "/v1/completions", {"model": "qwen", "prompt": "b", "max_tokens": 4})

    def one_waiting():
        text = call("GET", server.url + "/metrics")[2].decode()
        return text if metric(text, "vllm:num_requests_waiting", **labels) == 1.0 else None

    text = wait_for(one_waiting)
    assert metric(text, "vllm:num_requests_running", **labels) == 1.0
    started = time.monotonic()
    assert first.join()[0] == 200 and second.join()[0] == 200
    assert time.monotonic() - started >= 0.1  # the second one ran after the first
    text = call("GET", server.url + "/metrics")[2].decode()
    assert metric(text, "vllm:num_requests_waiting", **labels) == 0.0


# --- command lines and process mode --------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["vllm", "serve", "Qwen/Qwen3-8B-AWQ", "--enforce-eager", "--quantization", "awq_marlin",
     "--gpu-memory-utilization", "0.90", "--max-model-len", "8192", "--served-model-name", "qwen", "chat",
     "--port", "8000"],
    ["--model", "Qwen/Qwen3-8B-AWQ", "--enforce-eager", "--quantization=awq_marlin", "--gpu-memory-utilization",
     "0.90", "--max-model-len", "8k", "--served-model-name", "qwen", "chat", "--port=8000"],
    ["python3", "-m", "vllm.entrypoints.openai.api_server", "--model", "Qwen/Qwen3-8B-AWQ", "--served-model-name",
     "qwen", "chat", "--enforce-eager", "--quantization", "awq_marlin", "--gpu-memory-utilization", "0.90",
     "--max-model-len", "8K", "--port", "8000"],
    ["sh", "-c", "pip install -q foo && exec vllm serve Qwen/Qwen3-8B-AWQ --served-model-name qwen chat "
                 "--enforce-eager --quantization awq_marlin --gpu-memory-utilization 0.90 --port 8000"],
], ids=["vllm-serve", "image-entrypoint", "python-m", "shell"])
def test_from_args_reads_real_container_args(argv):
    parsed, extras = parse_vllm_args(argv)
    assert parsed["model"] == "Qwen/Qwen3-8B-AWQ"
    assert parsed["served_model_names"] == ("qwen", "chat")
    assert parsed["port"] == 8000 and parsed["gpu_memory_utilization"] == 0.9 and parsed["enforce_eager"] is True
    assert extras["enforce_eager"] is True
    assert extras["quantization"] == "awq_marlin" and extras["gpu_memory_utilization"] == "0.90"
    assert parsed.get("max_model_len", 8192) in (8000, 8192)
    with FakeVLLMServer.from_args(argv, port=0, version="0.8.5.post1") as server:
        assert server.port != 8000 and server.listen_ports == (8000,)
        assert server.served_model_names == ("qwen", "chat")
        assert server.wait_healthy(5)
        ids = [m["id"] for m in json.loads(call("GET", server.url + "/v1/models")[2])["data"]]
        assert ids == ["qwen", "chat"]
        args_line = next(line for line in server.logs() if "args: Namespace(" in line)
        assert "quantization='awq_marlin'" in args_line and "enforce_eager=True" in args_line


def test_listen_ports_are_the_args_port_or_vllms_default():
    assert FakeVLLMServer.from_args(["vllm", "serve", "m", "--port", "8005"], port=0).listen_ports == (8005,)
    assert FakeVLLMServer.from_args(["vllm", "serve", "m"], port=0).listen_ports == (8000,)


def test_from_args_without_model_uses_vllms_default():
    server = FakeVLLMServer.from_args(["--port", "8000", "--trust-remote-code"], port=0)
    assert server.model == "facebook/opt-125m"
    assert server.extra_args["trust_remote_code"] is True


@pytest.mark.parametrize("version,lines", [
    ("0.8.5.post1", ["vLLM API server version 0.8.5.post1", "args: Namespace(", "Starting vLLM API server on "
                     "http://0.0.0.0:8000", "api_key='k'"]),
    ("0.15.1", ["vLLM server version 0.15.1, serving model m", "non-default args: {",
                "Starting vLLM API server 0 on http://0.0.0.0:8000", "'api_key': ['k']"]),
    ("0.29.0", ["vLLM server version 0.29.0, serving model m", "Starting vLLM server on http://0.0.0.0:8000",
                "'api_key': '***'"]),
])
def test_startup_log_lines_per_release(version, lines):
    with FakeVLLMServer.from_args(["vllm", "serve", "m", "--api-key", "k"], port=0, version=version) as server:
        assert server.wait_healthy(5)
        logs = "\n".join(server.logs())
    for line in lines:
        assert line in logs


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spawn(*args, env=None):
    return subprocess.Popen([sys.executable, "-m", "tests.harness.fake_vllm", "serve", *args], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **(env or {})))


def test_process_mode_serves_and_exits_0_on_sigterm():
    port = _free_port()
    proc = _spawn("Qwen/Qwen3-8B-AWQ", "--port", str(port), "--served-model-name", "qwen", "--load-seconds", "0.2",
                  "--enforce-eager", "--fake-version", "0.8.5.post1", env={"VLLM_API_KEY": "k"})
    try:
        url = "http://127.0.0.1:%d" % port
        deadline = time.monotonic() + 10
        status = None
        while status != 200:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "fake vLLM process never became healthy"
            try:
                status = call("GET", url + "/health", timeout=1)[0]
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        assert call("GET", url + "/v1/models")[0] == 401  # VLLM_API_KEY from the process environment
        models = call("GET", url + "/v1/models", headers={"Authorization": "Bearer k"})[2]
        assert [m["id"] for m in json.loads(models)["data"]] == ["qwen"]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "vLLM API server version 0.8.5.post1" in out and "enforce_eager=True" in out
    assert "Application startup complete." in out


def test_process_mode_crash_exits_1_with_error_on_stderr():
    proc = _spawn("Qwen/Qwen3-8B-AWQ", "--port", str(_free_port()), "--load-seconds", "0.2", "--crash-during-load")
    try:
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1
    assert "RuntimeError: Engine core initialization failed." in err
    assert "Application startup complete." not in out
