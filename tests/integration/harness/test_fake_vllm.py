"""The fake vLLM server speaks vLLM's HTTP API and start-up behaviour over real sockets."""

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
import urllib.request

import pytest

from tests.harness.fake_vllm import FakeVLLMServer, parse_vllm_args

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def call(method, url, body=None, timeout=5):
    """(status, headers, raw body) of one request; HTTP errors are answers, not exceptions."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def refused(url):
    host, port = url.split("//")[1].split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def chat(url, model, content="Hello there", **extra):
    return call("POST", url + "/v1/chat/completions",
                dict({"model": model, "messages": [{"role": "user", "content": content}]}, **extra))


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


def test_model_path_is_the_served_name_by_default(fake_vllm):
    server = fake_vllm(model="/models/Qwen3-ASR-1.7B")
    assert server.wait_healthy(5)
    doc = json.loads(call("GET", server.url + "/v1/models")[2])
    assert [m["id"] for m in doc["data"]] == ["/models/Qwen3-ASR-1.7B"]


def test_health_is_an_empty_200_like_vllm(fake_vllm):
    server = fake_vllm()
    assert server.wait_healthy(5)
    status, headers, raw = call("GET", server.url + "/health")
    assert (status, raw, headers["Content-Length"]) == (200, b"", "0")
    assert call("GET", server.url + "/ping")[0] == 200
    assert call("POST", server.url + "/ping")[0] == 200


def test_refuses_connections_until_loaded_like_vllm(fake_vllm):
    start = time.monotonic()
    server = fake_vllm(load_seconds=0.8)
    assert server.url.startswith("http://127.0.0.1:") and server.state == "loading"
    assert refused(server.url)
    assert server.poll() is None
    assert server.wait_healthy(5)
    assert time.monotonic() - start >= 0.8
    assert server.state == "ready"
    assert call("GET", server.url + "/health")[0] == 200


def test_listen_during_load_answers_503_until_loaded(fake_vllm):
    server = fake_vllm(load_seconds=0.8, listen_during_load=True, served_model_names=("qwen",))
    status, _h, raw = call("GET", server.url + "/health")
    assert (status, raw) == (503, b"")
    status, _h, raw = call("GET", server.url + "/v1/models")
    assert status == 503 and json.loads(raw)["code"] == 503
    assert chat(server.url, "qwen")[0] == 503
    assert server.wait_healthy(5)
    assert call("GET", server.url + "/health")[0] == 200


def test_json_health_mode_like_the_tts_service(fake_vllm):
    server = fake_vllm(health_mode="json", load_seconds=0.8, listen_during_load=True)
    status, _h, raw = call("GET", server.url + "/health")
    assert (status, json.loads(raw)) == (503, {"status": "initializing", "ready": False})
    assert server.wait_healthy(5)
    status, _h, raw = call("GET", server.url + "/health")
    assert (status, json.loads(raw)) == (200, {"status": "healthy", "ready": True})


def test_json_health_mode_can_report_loading_only_in_the_body(fake_vllm):
    server = fake_vllm(health_mode="json", load_seconds=0.8, listen_during_load=True, json_loading_status=200)
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
    server.stop()
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
    server.stop()
    assert (server.state, server.poll()) == ("stopped", 0)


def test_fail_health_after_turns_unhealthy(fake_vllm):
    server = fake_vllm(fail_health_after=0.3, served_model_names=("qwen",))
    assert server.wait_healthy(5)
    assert call("GET", server.url + "/health")[0] == 200
    deadline = time.monotonic() + 5
    while call("GET", server.url + "/health")[0] == 200:
        assert time.monotonic() < deadline, "never became unhealthy"
        time.sleep(0.05)
    assert call("GET", server.url + "/health")[0] == 503
    status, _h, raw = chat(server.url, "qwen")
    assert status == 500 and json.loads(raw)["type"] == "InternalServerError"


def test_response_delay_slows_requests_that_are_served_concurrently(fake_vllm):
    server = fake_vllm(response_delay=0.4)
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


def test_unknown_model_gets_vllms_404(fake_vllm):
    server = fake_vllm(served_model_names=("qwen",))
    assert server.wait_healthy(5)
    for path in ("/v1/chat/completions", "/v1/completions"):
        request = {"model": "x", "messages": [{"role": "user", "content": "a"}], "prompt": "a"}
        status, _h, raw = call("POST", server.url + path, request)
        assert status == 404
        assert json.loads(raw) == {"object": "error", "message": "The model `x` does not exist.",
                                   "type": "NotFoundError", "param": None, "code": 404}


def test_context_length_error_like_vllm(fake_vllm):
    server = fake_vllm(served_model_names=("qwen",), max_model_len=16)
    assert server.wait_healthy(5)
    status, _h, raw = chat(server.url, "qwen", content="a b c d", max_tokens=20)
    err = json.loads(raw)
    assert status == 400 and err["type"] == "BadRequestError"
    assert "maximum context length is 16 tokens" in err["message"] and "(4 in the messages, 20 in the completion)" \
        in err["message"]


def test_bad_json_is_a_400(fake_vllm):
    server = fake_vllm()
    assert server.wait_healthy(5)
    conn = httpclient.HTTPConnection(server.url[7:], timeout=5)
    conn.request("POST", "/v1/chat/completions", body=b"{not json", headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 400 and json.loads(resp.read())["object"] == "error"
    conn.close()
    assert call("GET", server.url + "/nope")[0] == 404
    assert call("POST", server.url + "/health")[0] == 405


def test_streaming_completions_use_sse_and_done(fake_vllm):
    server = fake_vllm(served_model_names=("qwen",))
    assert server.wait_healthy(5)
    plain = json.loads(call("POST", server.url + "/v1/completions", {"model": "qwen", "prompt": "a b"})[2])
    assert plain["object"] == "text_completion"
    status, headers, raw = call("POST", server.url + "/v1/completions",
                                {"model": "qwen", "prompt": "a b", "stream": True,
                                 "stream_options": {"include_usage": True}})
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = [line[len("data: "):] for line in raw.decode().split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    assert text == plain["choices"][0]["text"]
    assert chunks[-1]["usage"] == plain["usage"]
    status, _h, raw = call("POST", server.url + "/v1/chat/completions",
                           {"model": "qwen", "stream": True, "messages": [{"role": "user", "content": "a b"}]})
    events = [line[len("data: "):] for line in raw.decode().split("\n\n") if line]
    deltas = [json.loads(e)["choices"][0]["delta"] for e in events[:-1]]
    assert deltas[0]["role"] == "assistant" and events[-1] == "[DONE]"
    assert "".join(d.get("content", "") for d in deltas) == text


def test_version_and_metrics(fake_vllm):
    server = fake_vllm(version="0.15.1", served_model_names=("qwen",))
    assert server.wait_healthy(5)
    assert json.loads(call("GET", server.url + "/version")[2]) == {"version": "0.15.1"}
    chat(server.url, "qwen")
    status, headers, raw = call("GET", server.url + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert 'vllm:request_success_total{model_name="qwen"} 1.0' in raw.decode()


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
    assert parsed["port"] == 8000
    assert extras["enforce_eager"] is True
    assert extras["quantization"] == "awq_marlin" and extras["gpu_memory_utilization"] == "0.90"
    assert parsed.get("max_model_len", 8192) in (8000, 8192)
    with FakeVLLMServer.from_args(argv, port=0) as server:
        assert server.port != 8000 and server.served_model_names == ("qwen", "chat")
        assert server.wait_healthy(5)
        ids = [m["id"] for m in json.loads(call("GET", server.url + "/v1/models")[2])["data"]]
        assert ids == ["qwen", "chat"]
        args_line = next(line for line in server.logs() if "args: Namespace(" in line)
        assert "quantization='awq_marlin'" in args_line and "enforce_eager=True" in args_line


def test_from_args_without_model_uses_vllms_default():
    server = FakeVLLMServer.from_args(["--port", "8000", "--trust-remote-code"], port=0)
    assert server.model == "facebook/opt-125m"
    assert server.extra_args["trust_remote_code"] is True


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spawn(*args):
    return subprocess.Popen([sys.executable, "-m", "tests.harness.fake_vllm", "serve", *args], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_process_mode_serves_and_exits_0_on_sigterm():
    port = _free_port()
    proc = _spawn("Qwen/Qwen3-8B-AWQ", "--port", str(port), "--served-model-name", "qwen", "--load-seconds", "0.2",
                  "--enforce-eager")
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
        assert [m["id"] for m in json.loads(call("GET", url + "/v1/models")[2])["data"]] == ["qwen"]
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
