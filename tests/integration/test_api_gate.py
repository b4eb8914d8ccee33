"""The vllm role's API gate (roles/vllm/files/api_gate.py) in front of a fake vLLM server in development mode:
the OpenAI routes pass (streaming chunk by chunk, request bodies, status codes and error bodies unchanged),
the development endpoints answer 404 without reaching vLLM, and a server that is not listening yet is a 503
(which keeps the pod out of its Service until vLLM has loaded)."""

import http.client
import importlib.util
import json
import pathlib
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location("api_gate", ROOT / "roles" / "vllm" / "files" / "api_gate.py")
api_gate = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(api_gate)


@pytest.fixture
def gate_to():
    gates = []

    def start(upstream):
        logs = []
        gate = api_gate.Gate(("127.0.0.1", 0), upstream, 30.0, log=logs.append)
        threading.Thread(target=gate.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        gates.append(gate)
        gate.logs = logs
        return gate

    yield start
    for gate in gates:
        gate.shutdown()
        gate.server_close()


def call(port, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"content-type": "application/json"} if body is not None else {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, response.getheader("content-type"), data


@pytest.fixture
def dev_server(fake_vllm):
    server = fake_vllm(model="Qwen/Qwen3-0.6B", served_model_names=["qwen"], env={"VLLM_SERVER_DEV_MODE": "1"},
                       enable_sleep_mode=True, token_delay=0.05)
    server.wait_healthy(10)
    return server


def test_client_routes_pass_and_the_development_endpoints_do_not(gate_to, dev_server):
    upstream = int(dev_server.url.rsplit(":", 1)[1])
    gate = gate_to(("127.0.0.1", upstream))
    port = gate.server_address[1]
    assert call(port, "GET", "/health")[0] == 200
    status, _type, body = call(port, "GET", "/v1/models")
    assert status == 200 and [m["id"] for m in json.loads(body)["data"]] == ["qwen"]
    status, _type, body = call(port, "POST", "/v1/completions", {"model": "qwen", "prompt": "hi", "max_tokens": 2})
    assert status == 200 and json.loads(body)["usage"]["completion_tokens"] == 2
    # vLLM's own errors pass unchanged: an unknown model is its 404 with its body
    status, _type, body = call(port, "POST", "/v1/completions", {"model": "nope", "prompt": "hi", "max_tokens": 2})
    assert status == 404 and "does not exist" in body.decode()
    for method, path in (("POST", "/sleep?level=1"), ("POST", "/wake_up"), ("GET", "/is_sleeping"),
                         ("POST", "/reset_prefix_cache"), ("GET", "/server_info"), ("POST", "/v1/../sleep"),
                         ("POST", "/%2e%2e/sleep"), ("POST", "//sleep")):
        status, content_type, body = call(port, method, path, {} if method == "POST" else None)
        assert (status, content_type, json.loads(body)) == (404, "application/json", {"detail": "Not Found"}), path
    # none of it reached vLLM: still awake, and the gate said what it refused
    assert dev_server.is_sleeping() is False
    assert "refused POST /sleep: not a client route" in gate.logs
    # the same server answers them on its own port (where only the switcher goes)
    assert json.loads(call(upstream, "GET", "/is_sleeping")[2]) == {"is_sleeping": False}


def test_a_streamed_answer_passes_chunk_by_chunk_as_it_is_generated(gate_to, dev_server):
    gate = gate_to(("127.0.0.1", int(dev_server.url.rsplit(":", 1)[1])))
    conn = http.client.HTTPConnection("127.0.0.1", gate.server_address[1], timeout=10)
    conn.request("POST", "/v1/chat/completions", body=json.dumps({
        "model": "qwen", "messages": [{"role": "user", "content": "count"}], "max_tokens": 8, "stream": True}),
        headers={"content-type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("transfer-encoding") == "chunked"
    arrivals = []
    events = b""
    while True:
        piece = response.read1(65536)
        if not piece:
            break
        arrivals.append(time.monotonic())
        events += piece
    conn.close()
    assert events.rstrip().endswith(b"data: [DONE]")
    # 8 tokens at 0.05 s each: the events arrived over that time, not all at the end
    assert len(arrivals) >= 4 and arrivals[-1] - arrivals[0] >= 0.2


def test_a_server_not_listening_yet_is_a_503_not_a_hang(gate_to):
    def refused():
        raise ConnectionRefusedError(111, "Connection refused")

    gate = gate_to(refused)
    status, _type, body = call(gate.server_address[1], "GET", "/health")
    assert status == 503 and "not answering yet" in json.loads(body)["detail"]


@pytest.mark.parametrize("path, allowed", [
    ("/v1/chat/completions", True), ("/v1/models?x=1", True), ("/v2/rerank", True), ("/metrics", True),
    ("/tokenize", True), ("/health", True), ("/sleep", False), ("/wake_up?tags=weights", False),
    ("/collective_rpc", False), ("/v1/load_lora_adapter", False), ("/v1/%2e%2e/sleep", False), ("/health/", False),
    ("/pause", False), ("/start_profile", False), ("/update_weights", False),
])
def test_the_client_routes(path, allowed):
    assert api_gate.client_route(path) is allowed
