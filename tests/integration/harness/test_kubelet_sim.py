"""The kubelet simulator's controllers, scheduler and kubelet, driven over HTTP by the fake API.

Time scale: the `kubelet` fixture runs at LOGIC_TEST_TIME_SCALE (0.05); tests that start their own
simulator say their scale. The behaviours of issue 11 (programs, probes, images, references, termination,
GC, devices) have their own files: test_kubelet_*.py."""

import http.server
import json
import socket
import threading
import time
import urllib.error

import pytest

from tests.harness.fake_kube import FakeKubeAPI
from tests.harness.kubelet import TIME_SCALE_ENV, KubeletSimulator, NodeSpec
from tests.harness.kubelet.testing import (VLLM_IMAGE, available, container, deployment, events, pod, pods_of,
                                           ready, service, status_of, vllm_container, wait_for)

SCALE = 0.05


class TinyBackend:
    """A test program (`tiny-server`): real HTTP on loopback, switchable health, log lines, crash."""

    listen_ports = [8000]
    listen_host = "0.0.0.0"

    def __init__(self, healthy=True):
        self.healthy = healthy
        self.exit_code = None
        self.stopped = False
        self.lines = ["INFO starting"]
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                ok = self.path != "/health" or backend.healthy
                body = json.dumps({"path": self.path}).encode()
                self.send_response(200 if ok else 503)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                backend.lines.append(f"GET {self.path} {200 if ok else 503}")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02})

    def start(self):
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def poll(self):
        return self.exit_code

    def stop(self, grace=0):
        if not self.stopped:
            self.stopped = True
            self.server.shutdown()
            self.server.server_close()
            self.thread.join()
        return self.exit_code if self.exit_code is not None else 0

    def crash(self, code):
        self.stop()
        self.exit_code = code

    def logs(self):
        return list(self.lines)

    def signal(self, name):
        return False


class Programs:
    def __init__(self, healthy=True):
        self.healthy = healthy
        self.made = []

    def __call__(self, ctx):
        backend = TinyBackend(self.healthy)
        self.made.append(backend)
        return backend


def tiny(**extra):
    return container("server", "busybox:1.36", command=["tiny-server"], port=8000, **extra)


def test_nodes_advertise_gpus_with_time_slicing(kube_api):
    # scale 0.05; the device plugin registers GPUs x replicas, the node status shows it
    nodes = [NodeSpec(name="t4", gpus=1, gpu_product="Tesla-T4", gpu_memory_mib=15360, time_slicing_replicas=2)]
    with KubeletSimulator(kube_api.url, nodes=nodes, time_scale=SCALE):
        node = kube_api.get("Node", "t4")
    labels = node["metadata"]["labels"]
    assert labels["nvidia.com/gpu.product"] == "Tesla-T4" and labels["nvidia.com/gpu.memory"] == "15360"
    assert labels["nvidia.com/gpu.count"] == "1" and labels["kubernetes.io/hostname"] == "t4"
    assert labels["nvidia.com/device-plugin.config"] == "time-slicing-2"
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "2"
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "2"
    assert [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"] == ["True"]


def test_one_replica_becomes_ready_with_realistic_status(kube_api, kubelet):
    # how fast: benchmarks/fake_cluster.py (ready_ms); tests assert behaviour, not timings
    kube_api.create(deployment("vllm", vllm_container()))
    wait_for(lambda: available(kube_api, "vllm", 1), what="deployment available")
    [running] = pods_of(kube_api, "vllm")
    assert running["status"]["phase"] == "Running" and running["spec"]["nodeName"] == "gpu-node"
    assert running["metadata"]["labels"]["pod-template-hash"] in running["metadata"]["name"]
    [status] = running["status"]["containerStatuses"]
    assert status["ready"] and "running" in status["state"] and status["restartCount"] == 0
    assert status["image"] == "docker.io/" + VLLM_IMAGE and status["containerID"].startswith("containerd://")
    deploy_status = kube_api.get("Deployment", "vllm")["status"]
    assert {c["type"]: c["reason"] for c in deploy_status["conditions"]} == {
        "Available": "MinimumReplicasAvailable", "Progressing": "NewReplicaSetAvailable"}
    wait_for(lambda: {"Scheduled", "Pulled", "Created", "Started"} <= {e["reason"] for e in events(kube_api)},
             what="kubelet events")
    pulled = events(kube_api, "Pulled")[0]["message"]
    assert pulled == f'Container image "{VLLM_IMAGE}" already present on machine'


def test_deployment_status_numbers_and_observed_generation(kube_api, kubelet):
    kube_api.create(deployment("vllm", vllm_container(gpus=0), replicas=2, strategy="RollingUpdate"))
    wait_for(lambda: available(kube_api, "vllm", 2), what="2 replicas")
    res = kube_api.resource("Deployment")
    kube_api.registry.patch(res, "default", "vllm", "application/json-patch+json",
                            b'[{"op":"replace","path":"/spec/template/spec/containers/0/image",'
                            b'"value":"vllm/vllm-openai:v0.9.0"}]', "test")
    assert kube_api.get("Deployment", "vllm")["metadata"]["generation"] == 2
    wait_for(lambda: available(kube_api, "vllm", 2) and len(pods_of(kube_api, "vllm")) == 2, timeout=20,
             what="rolling update")
    assert {p["spec"]["containers"][0]["image"] for p in pods_of(kube_api, "vllm")} == {"vllm/vllm-openai:v0.9.0"}
    assert len(kube_api.list("ReplicaSet", "default")) == 2
    kube_api.registry.patch(res, "default", "vllm", "application/merge-patch+json", b'{"spec":{"replicas":0}}', "test")
    wait_for(lambda: not pods_of(kube_api, "vllm") and
             kube_api.get("Deployment", "vllm")["status"].get("observedGeneration") == 3, what="scale to zero")
    status = kube_api.get("Deployment", "vllm")["status"]
    assert not {"replicas", "readyReplicas", "availableReplicas", "updatedReplicas"} & set(status), \
        "zero counts are omitted like Go's omitempty"


def test_recreate_removes_old_pods_before_creating_new_ones(kube_api, kubelet):
    order = []
    pods = kube_api.resource("Pod")

    def record(event):
        if event.resource is pods and event.type in ("ADDED", "DELETED"):
            order.append((event.type, event.obj["spec"]["containers"][0]["image"]))

    kube_api.store.add_listener(record)
    kube_api.create(deployment("vllm", vllm_container()))
    wait_for(lambda: available(kube_api, "vllm", 1), what="first rollout")
    kube_api.registry.patch(kube_api.resource("Deployment"), "default", "vllm", "application/json-patch+json",
                            b'[{"op":"replace","path":"/spec/template/spec/containers/0/image",'
                            b'"value":"vllm/vllm-openai:v0.9.0"}]', "test")
    wait_for(lambda: available(kube_api, "vllm", 1) and len(order) == 3, what="second rollout")
    assert order == [("ADDED", VLLM_IMAGE), ("DELETED", VLLM_IMAGE), ("ADDED", "vllm/vllm-openai:v0.9.0")]


def test_pod_waits_for_a_free_gpu_with_failed_scheduling_event(kube_api, kubelet):
    kube_api.create(deployment("ml", vllm_container()))
    wait_for(lambda: available(kube_api, "ml", 1), what="ml ready")
    kube_api.create(deployment("r1", vllm_container()))
    [pending] = wait_for(lambda: [p for p in pods_of(kube_api, "r1") if p.get("status", {}).get("conditions")],
                         what="r1 unschedulable")
    [scheduled] = pending["status"]["conditions"]
    assert (scheduled["type"], scheduled["status"], scheduled["reason"]) == ("PodScheduled", "False",
                                                                             "Unschedulable")
    assert scheduled["message"] == ("0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes "
                                    "are available: 1 No preemption victims found for incoming pod.")
    assert pending["status"]["phase"] == "Pending" and "nodeName" not in pending["spec"]
    [event] = wait_for(lambda: events(kube_api, "FailedScheduling"), what="FailedScheduling event")
    assert event["type"] == "Warning" and event["involvedObject"]["name"] == pending["metadata"]["name"]
    assert event["message"] == scheduled["message"]
    kube_api.registry.patch_scale(kube_api.resource("Deployment"), "default", "ml", "application/merge-patch+json",
                                  b'{"spec":{"replicas":0}}', "gpu-mode")
    wait_for(lambda: available(kube_api, "r1", 1), what="r1 scheduled once the GPU is free")
    assert not pods_of(kube_api, "ml")


def test_crashing_program_restarts_the_container(kube_api):
    # scale 0.05: the first crash restarts at once (the kubelet's back-off starts with the second)
    programs = Programs()
    with KubeletSimulator(kube_api.url, custom_programs={"tiny-server": programs}, time_scale=SCALE) as sim:
        kube_api.create(deployment("tiny", tiny(readinessProbe={"httpGet": {"path": "/health", "port": "http"},
                                                                "periodSeconds": 1})))
        wait_for(lambda: available(kube_api, "tiny", 1), what="ready")
        programs.made[0].crash(1)

        def restarted():
            [running] = pods_of(kube_api, "tiny")
            status = running["status"]["containerStatuses"][0]
            return len(programs.made) == 2 and status["restartCount"] == 1 and status["ready"] and \
                sim.backend_of("default", running["metadata"]["name"]) is programs.made[1] and running

        restarted_pod = wait_for(restarted, what="restarted and ready")
        wait_for(lambda: available(kube_api, "tiny", 1), what="available again")
        assert not events(kube_api, "BackOff"), "no back-off before the first restart"
    last = restarted_pod["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (1, "Error")
    assert programs.made[1].stopped, "stopping the simulator stops its programs"


def test_readiness_follows_the_program_then_proxy_and_logs_reach_it(kube_api):
    # scale 0.05: readiness probed every 0.05 s (period 1 s)
    programs = Programs(healthy=False)
    with KubeletSimulator(kube_api.url, custom_programs={"tiny-server": programs}, time_scale=SCALE):
        kube_api.create(service("tiny-api", "tiny", 8000, "http"))
        kube_api.create(deployment("tiny", tiny(readinessProbe={"httpGet": {"path": "/health", "port": "http"},
                                                                "periodSeconds": 1})))
        [running] = wait_for(lambda: [p for p in pods_of(kube_api, "tiny") if p["status"].get("phase") == "Running"],
                             what="running")
        name = running["metadata"]["name"]
        proxy = f"{kube_api.url}/api/v1/namespaces/default/services/tiny-api:8000/proxy/v1/models"
        with pytest.raises(urllib.error.HTTPError) as err:
            kube_api.urlopen(proxy, timeout=5)
        assert err.value.code == 503, "no ready endpoint while the program is unhealthy"
        wait_for(lambda: "GET /health 503" in programs.made[0].lines, what="a failing readiness probe")
        assert not ready(kube_api.get("Pod", name))
        unhealthy = wait_for(lambda: events(kube_api, "Unhealthy"), what="Unhealthy event")[0]
        assert unhealthy["message"] == "Readiness probe failed: HTTP probe failed with statuscode: 503"
        programs.made[0].healthy = True
        wait_for(lambda: ready(kube_api.get("Pod", name)), timeout=5, what="ready after health turns 200")
        wait_for(lambda: (kube_api.get("Endpoints", "tiny-api").get("subsets") or [{}])[0].get("addresses"),
                 what="endpoints")
        with kube_api.urlopen(proxy, timeout=5) as resp:
            assert json.loads(resp.read()) == {"path": "/v1/models"}
        with kube_api.urlopen(f"{kube_api.url}/api/v1/namespaces/default/pods/{name}/log", timeout=5) as resp:
            logs = resp.read().decode()
        assert logs.startswith("INFO starting\nGET /health 503\n") and "GET /v1/models 200" in logs
        kube_api.registry.delete(kube_api.resource("Deployment"), "default", "tiny")
        wait_for(lambda: programs.made[0].stopped, what="program stopped with its pod")


def test_daemonset_runs_one_pod_per_matching_node(kube_api):
    # scale 0.05
    nodes = [NodeSpec(name="gpu-node"), NodeSpec(name="cpu-node", gpus=0)]
    with KubeletSimulator(kube_api.url, nodes=nodes, time_scale=SCALE):
        template = {"metadata": {"labels": {"app": "agent"}},
                    "spec": {"nodeSelector": {"nvidia.com/gpu.present": "true"},
                             "containers": [container("agent", command=["sleep", "infinity"])]}}
        kube_api.create({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
                         "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template}})
        wait_for(lambda: (kube_api.get("DaemonSet", "agent").get("status") or {}).get("numberReady") == 1,
                 what="daemonset ready")
        status = kube_api.get("DaemonSet", "agent")["status"]
        [agent] = pods_of(kube_api, "agent")
    assert agent["spec"]["nodeName"] == "gpu-node"
    assert (status["desiredNumberScheduled"], status["currentNumberScheduled"], status["updatedNumberScheduled"],
            status["observedGeneration"]) == (1, 1, 1, 1)


def test_statefulset_pods_start_in_order_and_scale_down(kube_api, kubelet):
    created = []
    pods = kube_api.resource("Pod")
    kube_api.store.add_listener(lambda e: created.append(e.obj["metadata"]["name"])
                                if e.resource is pods and e.type == "ADDED" else None)
    kube_api.create({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
                     "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                              "template": {"metadata": {"labels": {"app": "db"}},
                                           "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}}}})
    wait_for(lambda: (kube_api.get("StatefulSet", "db").get("status") or {}).get("readyReplicas") == 2,
             what="statefulset ready")
    status = kube_api.get("StatefulSet", "db")["status"]
    assert created == ["db-0", "db-1"]
    assert status["currentRevision"] == status["updateRevision"] and status["updatedReplicas"] == 2
    kube_api.registry.patch_scale(kube_api.resource("StatefulSet"), "default", "db",
                                  "application/merge-patch+json", b'{"spec":{"replicas":0}}', "test")
    wait_for(lambda: not pods_of(kube_api, "db"), what="scaled down")


def test_node_affinity_and_selector_pick_the_node(kube_api):
    # scale 0.05
    nodes = [NodeSpec(name="a", labels={"memorysize": "16GB"}), NodeSpec(name="b", labels={"memorysize": "32GB"})]
    with KubeletSimulator(kube_api.url, nodes=nodes, time_scale=SCALE):
        affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "memorysize", "operator": "In", "values": ["32GB"]}]}]}}}
        kube_api.create(pod("asr", container("asr", command=["sleep", "infinity"]), affinity=affinity))
        kube_api.create(pod("nowhere", container("x", command=["sleep", "infinity"]),
                            nodeSelector={"memorysize": "64GB"}))
        wait_for(lambda: ready(kube_api.get("Pod", "asr")), what="asr ready")
        nowhere = wait_for(lambda: kube_api.get("Pod", "nowhere")["status"].get("conditions"), what="unschedulable")
    assert kube_api.get("Pod", "asr")["spec"]["nodeName"] == "b"
    assert nowhere[0]["message"].startswith("0/2 nodes are available: 2 node(s) didn't match Pod's node "
                                            "affinity/selector.")


def test_clean_shutdown_leaves_no_threads_or_listening_ports():
    before = {t.ident for t in threading.enumerate()}
    api = FakeKubeAPI()
    api.start()
    sim = KubeletSimulator(api.url, custom_programs={"tiny-server": Programs()}, time_scale=SCALE)
    sim.start()
    api.create(deployment("tiny", tiny()))
    wait_for(lambda: available(api, "tiny", 1), what="ready")
    ports = [api.port, sim.kubelet_port]
    sim.stop()
    api.stop()
    wait_for(lambda: {t.ident for t in threading.enumerate()} <= before, timeout=5,
             what=f"threads to end: {[t.name for t in threading.enumerate() if t.ident not in before]}")
    for port in ports:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()


def test_fake_vllm_through_service_and_pod_proxy(kube_api):
    # scale 0.05, a 6 s (simulated) model load: not Ready while loading
    probe = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 1}
    with KubeletSimulator(kube_api.url, vllm_load_seconds=6, time_scale=SCALE):
        kube_api.create(service("vllm-api", "vllm", 8000, "http"))
        kube_api.create(deployment("vllm", vllm_container(readinessProbe=probe)))
        [running] = wait_for(lambda: [p for p in pods_of(kube_api, "vllm") if p["status"].get("phase") == "Running"],
                             what="running")
        assert not ready(running), "not ready while the model loads"
        wait_for(lambda: available(kube_api, "vllm", 1), what="ready after loading")
        wait_for(lambda: (kube_api.get("Endpoints", "vllm-api").get("subsets") or [{}])[0].get("addresses"),
                 what="endpoints")
        base = f"{kube_api.url}/api/v1/namespaces/default"
        with kube_api.urlopen(f"{base}/services/vllm-api:http/proxy/v1/models", timeout=5) as resp:
            assert [m["id"] for m in json.loads(resp.read())["data"]] == ["home-llm"]
        with kube_api.urlopen(f"{base}/pods/{running['metadata']['name']}:8000/proxy/health", timeout=5) as resp:
            assert resp.status == 200


def test_missing_service_account_blocks_pod_creation_like_admission(kube_api, kubelet):
    kube_api.create(deployment("vllm", vllm_container(), serviceAccountName="vllm-runner"))
    event = wait_for(lambda: events(kube_api, "FailedCreate"), what="FailedCreate event")[0]
    assert event["type"] == "Warning" and event["message"].startswith('Error creating: pods "vllm-')
    assert 'error looking up service account default/vllm-runner: serviceaccount "vllm-runner" not found' \
        in event["message"]
    wait_for(lambda: any(c["type"] == "ReplicaFailure" for c in
                         kube_api.get("Deployment", "vllm").get("status", {}).get("conditions", [])),
             what="ReplicaFailure condition")
    assert not pods_of(kube_api, "vllm")
    kube_api.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "vllm-runner"}})
    wait_for(lambda: available(kube_api, "vllm", 1), what="pods once the service account exists (retried)")
    failed = events(kube_api, "FailedCreate")
    assert len(failed) == 1 and failed[0]["count"] >= 1, "the same failure is one event, counted"


def test_stuck_rolling_update_reports_unavailable_replicas(kube_api, kubelet):
    kube_api.create(deployment("vllm", vllm_container(), strategy="RollingUpdate"))
    wait_for(lambda: available(kube_api, "vllm", 1), what="first rollout")
    kube_api.registry.patch(kube_api.resource("Deployment"), "default", "vllm", "application/merge-patch+json",
                            b'{"spec":{"template":{"spec":{"serviceAccountName":"missing"}}}}', "test")

    def stuck():
        status = kube_api.get("Deployment", "vllm")["status"]
        failed = [c["reason"] for c in status.get("conditions", []) if c["type"] == "ReplicaFailure"]
        return status.get("observedGeneration") == 2 and failed == ["FailedCreate"] and status

    status = wait_for(stuck, what="ReplicaFailure reported")
    assert (status["replicas"], status["availableReplicas"], status.get("updatedReplicas", 0)) == (1, 1, 0)
    assert status["unavailableReplicas"] == 1, "kubernetes.core's deployment_ready must stay false"
    assert len(pods_of(kube_api, "vllm")) == 1, "the old pod keeps serving"


def test_the_time_scale_comes_from_the_environment(kube_api, monkeypatch):
    # BAREMETAL_GPU_SIM_TIME_SCALE=0.01: a 50 s sleep lasts 0.5 s
    monkeypatch.setenv(TIME_SCALE_ENV, "fast")
    with pytest.raises(ValueError, match="BAREMETAL_GPU_SIM_TIME_SCALE='fast' is not a number"):
        KubeletSimulator(kube_api.url)
    monkeypatch.setenv(TIME_SCALE_ENV, "0.01")
    with KubeletSimulator(kube_api.url) as sim:
        kube_api.create(pod("nap", container(command=["sh", "-c", "sleep 50; exit 4"]), restartPolicy="Never"))
        wait_for(lambda: ready(kube_api.get("Pod", "nap")), what="running")
        started = time.monotonic()
        done = wait_for(lambda: status_of(kube_api.get("Pod", "nap")).get("state", {}).get("terminated"),
                        what="the sleep over")
        assert time.monotonic() - started >= 0.4 and done["exitCode"] == 4
        wait_for(lambda: kube_api.get("Pod", "nap")["status"]["phase"] == "Failed", what="phase Failed")
        assert not sim.errors
