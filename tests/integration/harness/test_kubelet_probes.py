"""Ports and probes as a kubelet runs them: a process listens where its args say and nowhere else; startup,
readiness and liveness probes on their own port/path with the manifest's timings and thresholds; httpGet,
tcpSocket and exec probes. Time scale 0.05 unless a test says otherwise (a 1 s period lasts 0.05 s)."""

import json
import time
import urllib.error

import pytest

from tests.harness.kubelet import KubeletSimulator
from tests.harness.kubelet.testing import (available, container, deployment, messages, pod, pods_of, ready,
                                           service, status_of, vllm_container, wait_for)

SCALE = 0.05


def http_probe(port="http", path="/health", **timing):
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": 1, **timing}


@pytest.fixture
def sim(kube_api, tmp_path):
    with KubeletSimulator(kube_api.url, time_scale=SCALE, vllm_load_seconds=2, state_dir=tmp_path) as simulator:
        yield simulator
    assert not simulator.errors, simulator.errors


def test_a_process_listens_only_where_its_args_say(kube_api, sim):
    # vLLM listens on 8000 (its --port) while the manifest says 8080 everywhere: never Ready, nothing answers
    kube_api.create(service("vllm-api", "vllm", 8080, "http"))
    kube_api.create(deployment("vllm", vllm_container(port=8080, listen=8000, readinessProbe=http_probe())))
    [running] = wait_for(lambda: [p for p in pods_of(kube_api, "vllm") if p["status"].get("podIP")], what="pod IP")
    ip = running["status"]["podIP"]
    refused = (f'Readiness probe failed: Get "http://{ip}:8080/health": dial tcp {ip}:8080: connect: connection '
               "refused")
    wait_for(lambda: refused in messages(kube_api, "Unhealthy"), what="probes refused on 8080")
    time.sleep(SCALE * 10)  # the server has loaded (2 s simulated) well before this
    assert not ready(kube_api.get("Pod", running["metadata"]["name"]))
    with kube_api.urlopen(f"{kube_api.url}/fake/v1/podnetwork", timeout=5) as resp:
        assert list(json.load(resp)) == [f"{ip}:8000"], "the pod network knows the port vLLM listens on, only"
    with pytest.raises(urllib.error.HTTPError) as err:
        kube_api.urlopen(f"{kube_api.url}/api/v1/namespaces/default/pods/{running['metadata']['name']}:8080"
                         "/proxy/health", timeout=5)
    assert err.value.code == 503 and b"connection refused" in err.value.read()


def test_a_named_probe_port_resolves_through_the_container_ports(kube_api, sim):
    kube_api.create(deployment("named", vllm_container(readinessProbe=http_probe("http"))))
    kube_api.create(deployment("unknown", vllm_container(gpus=0, readinessProbe=http_probe("metrics"))))
    wait_for(lambda: available(kube_api, "named", 1), what="ready through port http = 8000")
    wait_for(lambda: any('unable to find port' in m for m in messages(kube_api, "Unhealthy")), what="bad port name")
    assert not available(kube_api, "unknown", 1)


def test_a_startup_budget_too_short_for_the_load_kills_and_restarts(kube_api):
    # a 2 s startup budget (period 1, failureThreshold 2) for a 5 s model load: killed, restarted, never ready
    probe = http_probe(failureThreshold=2)
    with KubeletSimulator(kube_api.url, time_scale=SCALE, vllm_load_seconds=5) as sim:
        kube_api.create(deployment("vllm", vllm_container(startupProbe=probe, readinessProbe=http_probe())))
        wait_for(lambda: any(status_of(p).get("restartCount", 0) >= 2 for p in pods_of(kube_api, "vllm")),
                 what="restarts")
        [killed] = pods_of(kube_api, "vllm")
        assert not ready(killed)
        ip = killed["status"]["podIP"]
        refused = (f'Startup probe failed: Get "http://{ip}:8000/health": dial tcp {ip}:8000: connect: connection '
                   "refused")
        wait_for(lambda: refused in messages(kube_api, "Unhealthy"), what="Unhealthy event")
        wait_for(lambda: "Container vllm failed startup probe, will be restarted" in messages(kube_api, "Killing"),
                 what="Killing event")
        assert not sim.errors


def test_a_failed_liveness_budget_kills_with_137_when_sigterm_is_ignored(kube_api, sim):
    # sh as PID 1 ignores SIGTERM: SIGKILL at the end of the 2 s grace period, exit 137
    probe = {"tcpSocket": {"port": 9000}, "periodSeconds": 1, "failureThreshold": 2}
    kube_api.create(deployment("idle", container(command=["sh", "-c", "sleep infinity"], livenessProbe=probe),
                               terminationGracePeriodSeconds=2))
    terminated = wait_for(lambda: [status_of(p)["lastState"]["terminated"] for p in pods_of(kube_api, "idle")
                                   if status_of(p).get("lastState", {}).get("terminated")], what="killed once")[0]
    assert (terminated["exitCode"], terminated["reason"]) == (137, "Error")
    wait_for(lambda: any(m.startswith("Liveness probe failed: dial tcp 10.42.0.") and m.endswith(
        ":9000: connect: connection refused") for m in messages(kube_api, "Unhealthy")), what="Unhealthy event")
    wait_for(lambda: "Container main failed liveness probe, will be restarted" in messages(kube_api, "Killing"),
             what="Killing event")


def test_liveness_and_readiness_wait_for_startup_and_the_initial_delay(kube_api):
    # a 20 s load under a generous startup probe; liveness would kill at the first failure, but it only starts
    # after startup succeeded, and a second one waits its 300 s initialDelaySeconds
    startup = http_probe(failureThreshold=60)
    eager_liveness = http_probe(failureThreshold=1)
    with KubeletSimulator(kube_api.url, time_scale=SCALE, vllm_load_seconds=20) as sim:
        kube_api.create(deployment("eager", vllm_container(startupProbe=startup, livenessProbe=eager_liveness,
                                                           readinessProbe=http_probe())))
        delayed = http_probe("http", "/nowhere", initialDelaySeconds=300, failureThreshold=1)
        kube_api.create(deployment("delayed", vllm_container(gpus=0, livenessProbe=delayed)))
        wait_for(lambda: available(kube_api, "eager", 1), what="ready after the load")
        time.sleep(SCALE * 40)  # 40 simulated seconds more: the delayed liveness probe has not run yet
        assert not any(m.startswith("Liveness") for m in messages(kube_api, "Unhealthy"))
        assert [status_of(p)["restartCount"] for p in pods_of(kube_api, "eager") + pods_of(kube_api, "delayed")] \
            == [0, 0]
        assert not sim.errors


def test_readiness_is_probed_at_its_period(kube_api):
    # time scale 0.1: a 10 s period lasts 1 s; over 3 s about 3 probes (a 0.05 s poll would make ~60)
    with KubeletSimulator(kube_api.url, time_scale=0.1, vllm_load_seconds=0) as sim:
        kube_api.create(deployment("vllm", vllm_container(readinessProbe={"httpGet": {"path": "/health",
                                                                                      "port": 8000}})))
        [running] = wait_for(lambda: [p for p in pods_of(kube_api, "vllm") if ready(p)], what="ready")
        server = sim.backend_of("default", running["metadata"]["name"]).server
        before = sum(1 for line in server.logs() if '"GET /health HTTP/1.1"' in line)
        time.sleep(3.0)
        probes = sum(1 for line in server.logs() if '"GET /health HTTP/1.1"' in line) - before
    assert 2 <= probes <= 5, probes


def test_readiness_drops_only_after_failure_threshold_failures(kube_api, sim):
    # a dead engine answers /health with 500 (vLLM before 0.11; 503 from then on)
    kube_api.create(deployment("vllm", vllm_container(readinessProbe=http_probe(failureThreshold=3))))
    [running] = wait_for(lambda: [p for p in pods_of(kube_api, "vllm") if ready(p)], what="ready")
    name = running["metadata"]["name"]
    server = sim.backend_of("default", name).server
    server.mark_unhealthy()
    wait_for(lambda: not ready(kube_api.get("Pod", name)), what="not ready")
    failed = sum(1 for line in server.logs() if '"GET /health HTTP/1.1" 500' in line)
    assert failed >= 3, f"Ready turned False after {failed} failed probes"
    wait_for(lambda: [e for e in kube_api.list("Event", "default") if e["reason"] == "Unhealthy" and e["count"] >= 3
                      and e["message"] == "Readiness probe failed: HTTP probe failed with statuscode: 500"],
             what="one Unhealthy event, counted")


def test_exec_probes_run_in_the_container_with_the_image_tools(kube_api, sim):
    curl = ["curl", "-sf", "http://localhost:8000/health"]
    models = ["python3", "-c", "import json, urllib.request; "
                               "assert json.load(urllib.request.urlopen('http://localhost:8000/v1/models'))['data']"]
    kube_api.create(deployment("curl", vllm_container(readinessProbe={"exec": {"command": curl}, "periodSeconds": 1})))
    python_probe = {"exec": {"command": models}, "periodSeconds": 1}
    kube_api.create(deployment("python", vllm_container(gpus=0, readinessProbe=python_probe)))
    kube_api.create(pod("file", container(command=["sh", "-c", "touch /tmp/healthy; sleep infinity"],
                                          readinessProbe={"exec": {"command": ["cat", "/tmp/healthy"]},
                                                          "periodSeconds": 1})))
    kube_api.create(pod("no-curl", container(command=["sleep", "infinity"], readinessProbe={
        "exec": {"command": ["sh", "-c", "curl -f localhost:8000/health"]}, "periodSeconds": 1})))
    kube_api.create(pod("no-binary", container(command=["sleep", "infinity"], readinessProbe={
        "exec": {"command": curl}, "periodSeconds": 1})))
    wait_for(lambda: available(kube_api, "curl", 1) and available(kube_api, "python", 1)
             and ready(kube_api.get("Pod", "file")), what="exec probes passing")
    not_found = "Readiness probe failed: sh: 1: curl: not found\n"
    wait_for(lambda: not_found in messages(kube_api, "Unhealthy", about="no-curl"), what="127")
    errored = wait_for(lambda: messages(kube_api, "Unhealthy", about="no-binary"), what="errored")[0]
    assert errored.startswith("Readiness probe errored: rpc error: code = Unknown desc = failed to exec in container")
    assert 'exec: "curl": executable file not found in $PATH' in errored
    assert not ready(kube_api.get("Pod", "no-curl")) and not ready(kube_api.get("Pod", "no-binary"))
