"""The kubelet simulator: controllers, scheduler and kubelet driven over HTTP by the fake API."""

import http.server
import json
import socket
import threading
import time
import urllib.error

import pytest

from tests.harness.fake_kube import FakeKubeAPI
from tests.harness.kubelet_sim import Delays, KubeletSimulator, NodeSpec


def wait_for(predicate, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def deployment(name="vllm", replicas=1, gpus=0, strategy="Recreate", image="vllm/vllm-openai:v0.8.5.post1",
               probe=None, port=8000):
    container = {"name": "vllm", "image": image, "ports": [{"containerPort": port, "name": "http"}]}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": gpus}}
    if probe:
        container["readinessProbe"] = {"httpGet": {"path": probe, "port": port}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "strategy": {"type": strategy},
                     "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}}}


def pods_of(api, app):
    return api.list("Pod", "default", f"app={app}")


def ready(pod):
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions", []))


def available(api, name, replicas):
    status = api.get("Deployment", name).get("status") or {}
    generation = api.get("Deployment", name)["metadata"]["generation"]
    return status.get("availableReplicas", 0) == replicas and status.get("observedGeneration") == generation \
        and status.get("updatedReplicas", 0) == replicas and status.get("replicas", 0) == replicas


def events(api, reason):
    return [e for e in api.list("Event", "default") if e["reason"] == reason]


class TinyBackend:
    """A stand-in for the fake vLLM server: real HTTP, switchable health, log lines, crash."""

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

    def stop(self):
        if not self.stopped:
            self.stopped = True
            self.server.shutdown()
            self.server.server_close()
            self.thread.join()

    def logs(self):
        return list(self.lines)


class Factory:
    def __init__(self, healthy=True):
        self.healthy = healthy
        self.made = []

    def __call__(self, pod):
        backend = TinyBackend(self.healthy)
        self.made.append(backend)
        return backend


def test_nodes_advertise_gpus_with_time_slicing(kube_api):
    nodes = [NodeSpec(name="t4", gpus=1, gpu_product="Tesla-T4", gpu_memory_mib=15360, time_slicing_replicas=2)]
    with KubeletSimulator(kube_api.url, nodes=nodes):
        node = kube_api.get("Node", "t4")
    labels = node["metadata"]["labels"]
    assert labels["nvidia.com/gpu.product"] == "Tesla-T4" and labels["nvidia.com/gpu.memory"] == "15360"
    assert labels["nvidia.com/gpu.count"] == "1" and labels["kubernetes.io/hostname"] == "t4"
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "2"
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "2"
    assert [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"] == ["True"]


def test_one_replica_becomes_ready_with_realistic_status(kube_api, kubelet):
    # how fast: benchmarks/fake_cluster.py (ready_ms); tests assert behaviour, not timings
    kube_api.create(deployment(gpus=1))
    wait_for(lambda: available(kube_api, "vllm", 1), what="deployment available")
    [pod] = pods_of(kube_api, "vllm")
    assert pod["status"]["phase"] == "Running" and pod["spec"]["nodeName"] == "gpu-node"
    assert pod["metadata"]["labels"]["pod-template-hash"] in pod["metadata"]["name"]
    [container] = pod["status"]["containerStatuses"]
    assert container["ready"] and "running" in container["state"] and container["restartCount"] == 0
    status = kube_api.get("Deployment", "vllm")["status"]
    assert {c["type"]: c["reason"] for c in status["conditions"]} == {
        "Available": "MinimumReplicasAvailable", "Progressing": "NewReplicaSetAvailable"}
    reasons = {e["reason"] for e in kube_api.list("Event", "default")}
    wait_for(lambda: {"Scheduled", "Pulling", "Pulled", "Created", "Started"} <=
             {e["reason"] for e in kube_api.list("Event", "default")}, what=f"kubelet events, saw {reasons}")


def test_deployment_status_numbers_and_observed_generation(kube_api, kubelet):
    kube_api.create(deployment(replicas=2, strategy="RollingUpdate"))
    wait_for(lambda: available(kube_api, "vllm", 2), what="2 replicas")
    api = kube_api.registry
    res = kube_api.resource("Deployment")
    api.patch(res, "default", "vllm", "application/merge-patch+json",
              json.dumps({"spec": {"template": {"spec": {"containers": [
                  {"name": "vllm", "image": "vllm/vllm-openai:v0.9.0",
                   "ports": [{"containerPort": 8000, "name": "http"}]}]}}}}).encode(), "test")
    assert kube_api.get("Deployment", "vllm")["metadata"]["generation"] == 2
    wait_for(lambda: available(kube_api, "vllm", 2) and len(pods_of(kube_api, "vllm")) == 2,
             what="rolling update")
    assert {p["spec"]["containers"][0]["image"] for p in pods_of(kube_api, "vllm")} == {"vllm/vllm-openai:v0.9.0"}
    assert len(kube_api.list("ReplicaSet", "default")) == 2
    api.patch(res, "default", "vllm", "application/merge-patch+json", b'{"spec":{"replicas":0}}', "test")
    wait_for(lambda: not pods_of(kube_api, "vllm") and
             kube_api.get("Deployment", "vllm")["status"].get("observedGeneration") == 3, what="scale to zero")
    status = kube_api.get("Deployment", "vllm")["status"]
    assert not {"replicas", "readyReplicas", "availableReplicas", "updatedReplicas"} & set(status), \
        "zero counts are omitted like Go's omitempty"


def test_recreate_removes_old_pods_before_creating_new_ones(kube_api):
    order = []
    pods = kube_api.resource("Pod")

    def record(event):
        if event.resource is pods and event.type in ("ADDED", "DELETED"):
            order.append((event.type, event.obj["spec"]["containers"][0]["image"]))

    kube_api.store.add_listener(record)
    with KubeletSimulator(kube_api.url, delays=Delays(terminate_grace=0.2)):
        kube_api.create(deployment(gpus=1))
        wait_for(lambda: available(kube_api, "vllm", 1), what="first rollout")
        kube_api.registry.patch(kube_api.resource("Deployment"), "default", "vllm", "application/json-patch+json",
                                b'[{"op":"replace","path":"/spec/template/spec/containers/0/image",'
                                b'"value":"vllm/vllm-openai:v0.9.0"}]', "test")
        wait_for(lambda: available(kube_api, "vllm", 1), what="second rollout")
    assert order == [("ADDED", "vllm/vllm-openai:v0.8.5.post1"), ("DELETED", "vllm/vllm-openai:v0.8.5.post1"),
                     ("ADDED", "vllm/vllm-openai:v0.9.0")]


def test_pod_waits_for_a_free_gpu_with_failed_scheduling_event(kube_api, kubelet):
    kube_api.create(deployment("ml", gpus=1))
    wait_for(lambda: available(kube_api, "ml", 1), what="ml ready")
    kube_api.create(deployment("r1", gpus=1))
    [pending] = wait_for(lambda: [p for p in pods_of(kube_api, "r1")
                                  if p.get("status", {}).get("conditions")], what="r1 unschedulable")
    [scheduled] = pending["status"]["conditions"]
    assert (scheduled["type"], scheduled["status"], scheduled["reason"]) == ("PodScheduled", "False",
                                                                             "Unschedulable")
    assert scheduled["message"].startswith("0/1 nodes are available: 1 Insufficient nvidia.com/gpu.")
    assert pending["status"]["phase"] == "Pending" and "nodeName" not in pending["spec"]
    [event] = wait_for(lambda: events(kube_api, "FailedScheduling"), what="FailedScheduling event")
    assert event["type"] == "Warning" and event["involvedObject"]["name"] == pending["metadata"]["name"]
    assert event["message"] == scheduled["message"]
    kube_api.registry.patch_scale(kube_api.resource("Deployment"), "default", "ml", "application/merge-patch+json",
                                  b'{"spec":{"replicas":0}}', "gpu-mode")
    wait_for(lambda: available(kube_api, "r1", 1), what="r1 scheduled once the GPU is free")
    assert not pods_of(kube_api, "ml")


def test_terminating_pod_lingers_for_the_grace_delay(kube_api):
    with KubeletSimulator(kube_api.url, delays=Delays(terminate_grace=0.3)):
        kube_api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare", "labels": {"app": "b"}},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
        wait_for(lambda: ready(kube_api.get("Pod", "bare")), what="bare pod ready")
        started = time.monotonic()
        kube_api.registry.delete(kube_api.resource("Pod"), "default", "bare")
        assert kube_api.get("Pod", "bare")["metadata"]["deletionTimestamp"]
        wait_for(lambda: not pods_of(kube_api, "b"), what="pod removed")
        elapsed = time.monotonic() - started
        killing = wait_for(lambda: events(kube_api, "Killing"), what="Killing event")
    assert 0.25 <= elapsed < 2, elapsed
    assert killing[0]["message"] == "Stopping container c"


def test_crashing_backend_restarts_the_container(kube_api):
    factory = Factory()
    with KubeletSimulator(kube_api.url, vllm_factory=factory) as sim:
        kube_api.create(deployment(probe="/health"))
        wait_for(lambda: available(kube_api, "vllm", 1), what="ready")
        factory.made[0].exit_code = 1
        factory.made[0].stop()

        def restarted():
            [pod] = pods_of(kube_api, "vllm")
            status = pod["status"]["containerStatuses"][0]
            return len(factory.made) == 2 and status["restartCount"] == 1 and status["ready"] and \
                sim.backend_of("default", pod["metadata"]["name"]) is factory.made[1] and pod

        pod = wait_for(restarted, what="restarted and ready")
        wait_for(lambda: available(kube_api, "vllm", 1), what="available again")
    status = pod["status"]["containerStatuses"][0]
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert status["lastState"]["terminated"]["reason"] == "Error"
    assert [e["reason"] for e in events(kube_api, "BackOff")] == ["BackOff"]
    assert factory.made[1].stopped, "stopping the simulator stops its backends"


def test_readiness_follows_the_backend_then_proxy_and_logs_reach_it(kube_api):
    factory = Factory(healthy=False)
    with KubeletSimulator(kube_api.url, vllm_factory=factory):
        kube_api.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "vllm-api"},
                         "spec": {"selector": {"app": "vllm"}, "ports": [{"port": 8000, "targetPort": "http"}]}})
        kube_api.create(deployment(probe="/health"))
        [pod] = wait_for(lambda: [p for p in pods_of(kube_api, "vllm") if p["status"].get("phase") == "Running"],
                         what="running")
        name = pod["metadata"]["name"]
        proxy = f"{kube_api.url}/api/v1/namespaces/default/services/vllm-api:8000/proxy/v1/models"
        with pytest.raises(urllib.error.HTTPError) as err:
            kube_api.urlopen(proxy, timeout=5)
        assert err.value.code == 503, "no ready endpoint while the backend is unhealthy"
        wait_for(lambda: "GET /health 503" in factory.made[0].lines, what="a failing readiness probe")
        assert not ready(kube_api.get("Pod", name))
        factory.made[0].healthy = True
        wait_for(lambda: ready(kube_api.get("Pod", name)), timeout=2, what="ready after health turns 200")
        wait_for(lambda: (kube_api.get("Endpoints", "vllm-api").get("subsets") or [{}])[0].get("addresses"),
                 what="endpoints")
        with kube_api.urlopen(proxy, timeout=5) as resp:
            assert json.loads(resp.read()) == {"path": "/v1/models"}
        with kube_api.urlopen(f"{kube_api.url}/api/v1/namespaces/default/pods/{name}/log", timeout=5) as resp:
            logs = resp.read().decode()
        assert logs.startswith("INFO starting\nGET /health 503\n") and "GET /v1/models 200" in logs
        kube_api.registry.delete(kube_api.resource("Deployment"), "default", "vllm")
        wait_for(lambda: factory.made[0].stopped, what="backend stopped with its pod")


def test_daemonset_runs_one_pod_per_matching_node(kube_api):
    nodes = [NodeSpec(name="gpu-node"), NodeSpec(name="cpu-node", gpus=0)]
    with KubeletSimulator(kube_api.url, nodes=nodes):
        template = {"metadata": {"labels": {"app": "plugin"}},
                    "spec": {"nodeSelector": {"nvidia.com/gpu.present": "true"},
                             "containers": [{"name": "plugin", "image": "nvcr.io/nvidia/k8s-device-plugin:v0.17"}]}}
        kube_api.create({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "plugin"},
                         "spec": {"selector": {"matchLabels": {"app": "plugin"}}, "template": template}})
        wait_for(lambda: (kube_api.get("DaemonSet", "plugin").get("status") or {}).get("numberReady") == 1,
                 what="daemonset ready")
        status = kube_api.get("DaemonSet", "plugin")["status"]
        [pod] = pods_of(kube_api, "plugin")
    assert pod["spec"]["nodeName"] == "gpu-node"
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
    nodes = [NodeSpec(name="a", labels={"memorysize": "16GB"}), NodeSpec(name="b", labels={"memorysize": "32GB"})]
    with KubeletSimulator(kube_api.url, nodes=nodes):
        affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "memorysize", "operator": "In", "values": ["32GB"]}]}]}}}
        kube_api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "asr"},
                         "spec": {"affinity": affinity, "containers": [{"name": "asr", "image": "vllm"}]}})
        kube_api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nowhere"},
                         "spec": {"nodeSelector": {"memorysize": "64GB"},
                                  "containers": [{"name": "x", "image": "vllm"}]}})
        wait_for(lambda: ready(kube_api.get("Pod", "asr")), what="asr ready")
        nowhere = wait_for(lambda: kube_api.get("Pod", "nowhere")["status"].get("conditions"), what="unschedulable")
    assert kube_api.get("Pod", "asr")["spec"]["nodeName"] == "b"
    assert nowhere[0]["message"].startswith("0/2 nodes are available: 2 node(s) didn't match Pod's node "
                                            "affinity/selector.")


def test_clean_shutdown_leaves_no_threads_or_listening_ports():
    before = {t.ident for t in threading.enumerate()}
    api = FakeKubeAPI()
    api.start()
    sim = KubeletSimulator(api.url, vllm_factory=Factory())
    sim.start()
    api.create(deployment(probe="/health"))
    wait_for(lambda: available(api, "vllm", 1), what="ready")
    ports = [api.port, sim.kubelet_port]
    sim.stop()
    api.stop()
    wait_for(lambda: {t.ident for t in threading.enumerate()} <= before, timeout=2,
             what=f"threads to end: {[t.name for t in threading.enumerate() if t.ident not in before]}")
    for port in ports:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()


def test_fake_vllm_backend_through_service_and_pod_proxy(kube_api):
    pytest.importorskip("tests.harness.fake_vllm")
    from tests.harness.kubelet_sim import fake_vllm_factory

    dep = deployment(probe="/health")
    dep["spec"]["template"]["spec"]["containers"][0]["args"] = [
        "--model", "Qwen/Qwen3-8B-AWQ", "--served-model-name", "home-llm", "--port", "8000"]
    with KubeletSimulator(kube_api.url, vllm_factory=fake_vllm_factory(load_seconds=0.3)):
        kube_api.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "vllm-api"},
                         "spec": {"selector": {"app": "vllm"}, "ports": [{"port": 8000, "name": "http"}]}})
        kube_api.create(dep)
        [pod] = wait_for(lambda: [p for p in pods_of(kube_api, "vllm") if p["status"].get("phase") == "Running"],
                         what="running")
        assert not ready(pod), "not ready while the model loads"
        wait_for(lambda: available(kube_api, "vllm", 1), what="ready after loading")
        wait_for(lambda: (kube_api.get("Endpoints", "vllm-api").get("subsets") or [{}])[0].get("addresses"),
                 what="endpoints")
        base = f"{kube_api.url}/api/v1/namespaces/default"
        with kube_api.urlopen(f"{base}/services/vllm-api:http/proxy/v1/models", timeout=5) as resp:
            assert [m["id"] for m in json.loads(resp.read())["data"]] == ["home-llm"]
        with kube_api.urlopen(f"{base}/pods/{pod['metadata']['name']}:8000/proxy/health", timeout=5) as resp:
            assert resp.status == 200


def test_missing_service_account_blocks_pod_creation_like_admission(kube_api):
    dep = deployment()
    dep["spec"]["template"]["spec"]["serviceAccountName"] = "vllm-runner"
    with KubeletSimulator(kube_api.url) as sim:
        kube_api.create(dep)
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
        assert not sim.errors
    messages = {e["message"] for e in events(kube_api, "FailedCreate")}
    assert len(messages) == 1, "the same failure is reported once, not on every retry"


def test_stuck_rolling_update_reports_unavailable_replicas(kube_api, kubelet):
    kube_api.create(deployment(strategy="RollingUpdate"))
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
