"""`scripts/fake-cluster`, run as users run it (a subprocess), and talked to over real HTTP with the
`kubernetes` client: up/status/down, a second up, a busy port, a killed process, `run` and Ctrl-C, a vLLM
pod answering through the service proxy, and the benchmark's output line."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.harness import fake_cluster

ROOT = Path(__file__).resolve().parents[2]
COMMAND = ROOT / "scripts" / "fake-cluster"
SCALE = 0.05  # what tests of the command's logic run at; the defaults (real time) are tested on their own

kubernetes = pytest.importorskip("kubernetes")


@pytest.fixture
def cluster_env(tmp_path):
    """Environment with a private state root; every cluster a test starts is stopped at teardown."""
    env = dict(os.environ, BAREMETAL_GPU_FAKE_CLUSTER_STATE=str(tmp_path / "state"))
    started = []
    env_holder = {"env": env, "kubeconfigs": started, "state": tmp_path / "state"}
    yield env_holder
    for kubeconfig in started:  # a failed test must not leave a cluster running
        fake_cluster.down(str(kubeconfig), root=str(tmp_path / "state"))


def cli(cluster_env, *args, timeout=60):
    if args and args[0] in ("up", "run") and "--kubeconfig" in args:
        cluster_env["kubeconfigs"].append(args[args.index("--kubeconfig") + 1])
    return subprocess.run([str(COMMAND), *map(str, args)], env=cluster_env["env"], capture_output=True, text=True,
                          timeout=timeout, check=False)


def state_of(cluster_env, kubeconfig):
    out = cli(cluster_env, "status", "--kubeconfig", kubeconfig, "--json")
    return json.loads(out.stdout)


def leftovers(cluster_env):
    root = cluster_env["state"]
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def refused(url):
    """Nothing listens at url any more."""
    try:
        urllib.request.urlopen(url + "/readyz", timeout=2).close()
    except urllib.error.URLError as err:
        return isinstance(err.reason, ConnectionRefusedError)
    except OSError:  # e.g. reset by a process being killed: not settled yet
        return False
    return False


def client_for(kubeconfig):
    return kubernetes.config.new_client_from_config(config_file=str(kubeconfig))


def test_up_serves_gpu_nodes_to_a_real_client_and_down_leaves_nothing(cluster_env, tmp_path):
    kubeconfig = tmp_path / "kube" / "config"
    started = time.monotonic()
    out = cli(cluster_env, "up", "--kubeconfig", kubeconfig, "--node", "gpu-a", "--node", "gpu-b",
              "--gpus", 2, "--gpus", 1, "--gpu-product", "NVIDIA-H100-80GB-HBM3", "--gpu-memory", 81559,
              "--time-slicing", 2, "--time-scale", SCALE)
    took = time.monotonic() - started
    assert out.returncode == 0, out.stderr
    assert took < 10, f"up took {took:.1f}s"
    [state] = state_of(cluster_env, kubeconfig)
    assert state["running"] and state["kubeconfig"] == str(kubeconfig)
    log = Path(state["log"])
    pid_file = log.parent / "pid"
    assert f"log: {log}" in out.stdout and str(pid_file) in out.stdout
    assert int(pid_file.read_text()) == state["pid"]
    assert Path(f"/proc/{state['pid']}").exists()

    with client_for(kubeconfig) as api_client:
        nodes = kubernetes.client.CoreV1Api(api_client).list_node().items
    seen = {n.metadata.name: (n.status.allocatable.get("nvidia.com/gpu"), n.metadata.labels) for n in nodes}
    assert sorted(seen) == ["gpu-a", "gpu-b"]
    assert seen["gpu-a"][0] == "4" and seen["gpu-b"][0] == "2"  # GPUs x time-slicing replicas, from the plugin
    labels = seen["gpu-a"][1]
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert labels["nvidia.com/gpu.memory"] == "81559"
    assert labels["nvidia.com/device-plugin.config"] == "time-slicing-2"
    nvml = Path(state["nodes"][0]["gpu_state_dir"]) / "nvml.txt"
    mib = 1024 * 1024  # idle: total, 480 MiB reserved by the driver (measured on an H100), the rest free, 0 used
    assert "device_count 2" in nvml.read_text()
    assert f"gpu0.memory {81559 * mib} {480 * mib} {(81559 - 480) * mib} 0" in nvml.read_text()

    status = cli(cluster_env, "status", "--kubeconfig", kubeconfig)
    assert status.returncode == 0 and f"running: {state['url']} (pid {state['pid']})" in status.stdout

    # a second `up` for the same kubeconfig says so and changes nothing
    before = kubeconfig.read_bytes()
    again = cli(cluster_env, "up", "--kubeconfig", kubeconfig, "--gpus", 8)
    assert again.returncode == 0
    assert "already runs" in again.stdout and "nothing done" in again.stdout and str(state["pid"]) in again.stdout
    assert kubeconfig.read_bytes() == before
    assert [s["pid"] for s in state_of(cluster_env, kubeconfig)] == [state["pid"]]

    down = cli(cluster_env, "down", "--kubeconfig", kubeconfig)
    assert down.returncode == 0 and "stopped the fake cluster" in down.stdout
    assert refused(state["url"])
    assert not kubeconfig.exists()
    assert leftovers(cluster_env) == []
    gone = cli(cluster_env, "status", "--kubeconfig", kubeconfig)
    assert gone.returncode == 1 and "no fake cluster" in gone.stdout
    assert "nothing to stop" in cli(cluster_env, "down", "--kubeconfig", kubeconfig).stdout


def test_a_busy_port_is_a_clear_error_and_leaves_nothing(cluster_env, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        out = cli(cluster_env, "up", "--kubeconfig", kubeconfig, "--port", port)
    assert out.returncode == 4
    assert f"port {port} is already in use" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert not kubeconfig.exists()
    assert leftovers(cluster_env) == []


def test_nothing_is_left_behind_after_the_process_is_killed(cluster_env, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    assert cli(cluster_env, "up", "--kubeconfig", kubeconfig, "--time-scale", SCALE).returncode == 0
    [state] = state_of(cluster_env, kubeconfig)
    os.kill(state["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not refused(state["url"]) and time.monotonic() < deadline:
        time.sleep(0.02)

    down = cli(cluster_env, "down", "--kubeconfig", kubeconfig)
    assert down.returncode == 0 and "was not running" in down.stdout
    assert not kubeconfig.exists() and leftovers(cluster_env) == []

    # the same after a crash discovered by `status`, and a new `up` is not blocked by the dead one
    assert cli(cluster_env, "up", "--kubeconfig", kubeconfig, "--time-scale", SCALE).returncode == 0
    [state] = state_of(cluster_env, kubeconfig)
    os.kill(state["pid"], signal.SIGKILL)
    while not refused(state["url"]) and time.monotonic() < deadline + 10:
        time.sleep(0.02)
    [dead] = state_of(cluster_env, kubeconfig)
    assert dead["running"] is False
    assert not kubeconfig.exists() and leftovers(cluster_env) == []
    assert cli(cluster_env, "up", "--kubeconfig", kubeconfig, "--time-scale", SCALE).returncode == 0
    assert state_of(cluster_env, kubeconfig)[0]["running"]


def test_refuses_to_overwrite_a_kubeconfig_it_did_not_write(cluster_env, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n# a real cluster's credentials\n")
    out = cli(cluster_env, "up", "--kubeconfig", kubeconfig)
    assert out.returncode == 1 and "refusing to overwrite" in out.stderr
    assert "real cluster" in kubeconfig.read_text()
    assert leftovers(cluster_env) == []


def test_per_node_options_must_match_the_nodes(cluster_env, tmp_path):
    out = cli(cluster_env, "up", "--kubeconfig", tmp_path / "kc", "--node", "a", "--node", "b", "--node", "c",
              "--gpus", 1, "--gpus", 2)
    assert out.returncode == 1
    assert "--gpus is given 2 times for 3 node(s)" in out.stderr
    assert leftovers(cluster_env) == [] and not (tmp_path / "kc").exists()


def deployment(name, image, args, gpus=0):
    container = {"name": "main", "image": image, "args": args, "ports": [{"containerPort": 8000}]}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
        container["readinessProbe"] = {"httpGet": {"path": "/health", "port": 8000}, "periodSeconds": 1}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}}}


def wait_available(apps, name, timeout=20.0):
    watch = kubernetes.watch.Watch()
    for event in watch.stream(apps.list_namespaced_deployment, "default", field_selector=f"metadata.name={name}",
                              timeout_seconds=int(timeout)):
        if (event["object"].status.available_replicas or 0) >= 1:
            watch.stop()
            return True
    return False


def test_a_ready_vllm_pod_answers_through_the_service_proxy(cluster_env, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    up_cmd = cli(cluster_env, "up", "--kubeconfig", kubeconfig, "--time-scale", SCALE, "--load-seconds", 4)
    assert up_cmd.returncode == 0, up_cmd.stderr
    with client_for(kubeconfig) as api_client:
        apps = kubernetes.client.AppsV1Api(api_client)
        core = kubernetes.client.CoreV1Api(api_client)
        apps.create_namespaced_deployment("default", deployment(
            "vllm-ml", "vllm/vllm-openai:v0.8.5.post1",
            ["--model", "Qwen/Qwen3-8B-AWQ", "--served-model-name", "ml", "--port", "8000", "--max-model-len", "8192"],
            gpus=1))
        apps.create_namespaced_deployment("default", deployment("web", "docker.io/nginx:latest", []))
        core.create_namespaced_service("default", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "vllm-api"},
            "spec": {"selector": {"app": "vllm-ml"}, "ports": [{"port": 8000, "targetPort": 8000}]}})
        assert wait_available(apps, "vllm-ml") and wait_available(apps, "web")
        response = core.connect_get_namespaced_service_proxy_with_path("vllm-api:8000", "default", "v1/models",
                                                                       _preload_content=False)
        models = json.loads(response.data)
        assert [m["id"] for m in models["data"]] == ["ml"]
    [state] = state_of(cluster_env, kubeconfig)
    with client_for(kubeconfig) as api_client:  # pod IP:port -> the local URL that really serves it
        backends = json.loads(api_client.call_api("GET", state["url"] + "/fake/v1/podnetwork").read())
    # only the vLLM pod got a fake vLLM server; nginx just "runs"
    assert len(set(backends.values())) == 1
    backend = next(iter(backends.values()))
    assert cli(cluster_env, "down", "--kubeconfig", kubeconfig).returncode == 0
    assert refused(state["url"]) and refused(backend)
    assert leftovers(cluster_env) == []


def test_run_stays_in_the_foreground_until_ctrl_c(cluster_env, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    cluster_env["kubeconfigs"].append(kubeconfig)
    proc = subprocess.Popen([str(COMMAND), "run", "--kubeconfig", str(kubeconfig), "--time-scale", str(SCALE)],
                            env=cluster_env["env"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("fake cluster up: https://127.0.0.1:"), first
        url = first.split()[3]
        with client_for(kubeconfig) as api_client:  # k3s: TLS, and credentials even for /readyz
            assert api_client.call_api("GET", url + "/readyz").status == 200
        again = cli(cluster_env, "up", "--kubeconfig", kubeconfig)
        assert again.returncode == 0 and "already runs" in again.stdout
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert refused(url) and not kubeconfig.exists() and leftovers(cluster_env) == []


def test_benchmark_prints_its_figures_line(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fake_cluster.py"), "--quick"],
                         capture_output=True, text=True, timeout=120, check=False,
                         env=dict(os.environ, BAREMETAL_GPU_FAKE_CLUSTER_STATE=str(tmp_path / "state")))
    assert out.returncode == 0, out.stdout + out.stderr
    last = out.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"fake_cluster up_s=([0-9.]+) api_p99_ms=([0-9.]+) ready_ms=([0-9.]+)", last)
    assert match, last
    assert all(float(v) > 0 for v in match.groups())
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())


@pytest.mark.slow
def test_the_defaults_behave_like_a_node(cluster_env, tmp_path):
    # real time, images present, a 20 s model load: 5 s after its start the vLLM pod is not Ready yet
    kubeconfig = tmp_path / "kubeconfig"
    out = cli(cluster_env, "up", "--kubeconfig", kubeconfig)
    assert out.returncode == 0, out.stderr
    [state] = state_of(cluster_env, kubeconfig)
    config = json.loads((Path(state["state_dir"]) / "state.json").read_text())
    assert (config["time_scale"], config["load_seconds"], config["shutdown_seconds"]) == (1.0, 20.0, 3.0)
    manifest = deployment("vllm-ml", "vllm/vllm-openai:v0.8.5.post1",
                          ["--model", "Qwen/Qwen3-8B-AWQ", "--max-model-len", "8192"], gpus=1)
    with client_for(kubeconfig) as api_client:
        kubernetes.client.AppsV1Api(api_client).create_namespaced_deployment("default", manifest)
        core = kubernetes.client.CoreV1Api(api_client)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            pods = core.list_namespaced_pod("default", label_selector="app=vllm-ml").items
            if pods and pods[0].status.container_statuses and pods[0].status.container_statuses[0].state.running:
                break
            time.sleep(0.1)
        time.sleep(5)
        [loading] = core.list_namespaced_pod("default", label_selector="app=vllm-ml").items
        assert not loading.status.container_statuses[0].ready, "still loading its model"
        pulled = [e.message for e in core.list_namespaced_event("default").items if e.reason == "Pulled"]
        assert pulled == ['Container image "vllm/vllm-openai:v0.8.5.post1" already present on machine']
    assert cli(cluster_env, "down", "--kubeconfig", kubeconfig).returncode == 0
