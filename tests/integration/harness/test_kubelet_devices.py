"""GPUs as a node offers them: `nvidia.com/gpu` comes from the NVIDIA device plugin (no plugin pod, no GPUs),
its count from the config the config manager picked by node label (time-slicing replicas map to the same
physical GPU), and GPU memory in the node's ledger is freed only once a process has exited. Time scale 0.05
unless a test says otherwise."""

import time
from pathlib import Path


from tests.harness.kubelet import KubeletSimulator, NodeSpec, device_plugin_manifests, plugin_config
from tests.harness.kubelet.testing import (available, container, deployment, messages, pod, pods_of, ready,
                                           status_of, vllm_container, wait_for)

SCALE = 0.05
T4 = dict(name="t4", gpus=1, gpu_product="Tesla-T4", gpu_memory_mib=15360)


def allocatable(kube_api, node, resource="nvidia.com/gpu"):
    return (kube_api.get("Node", node).get("status") or {}).get("allocatable", {}).get(resource)


def gpu_sleeper(**extra):
    return container(command=["sh", "-c", "sleep infinity"], gpus=1, **extra)


def create_all(kube_api, objects):
    """What the role does: RuntimeClass `nvidia` only when missing (k3s made it), everything else applied."""
    for obj in objects:
        if obj["kind"] == "RuntimeClass" and any(r["metadata"]["name"] == obj["metadata"]["name"]
                                                 for r in kube_api.list("RuntimeClass")):
            continue
        kube_api.create(obj)


def test_no_device_plugin_no_gpus_until_it_registers(kube_api):
    with KubeletSimulator(kube_api.url, time_scale=SCALE, device_plugin=False) as sim:
        assert allocatable(kube_api, "gpu-node") is None
        kube_api.create(pod("wants-gpu", gpu_sleeper()))
        wait_for(lambda: any(m.startswith("0/1 nodes are available: 1 Insufficient nvidia.com/gpu.")
                             for m in messages(kube_api, "FailedScheduling")), what="no GPU to schedule on")
        create_all(kube_api, device_plugin_manifests({"default": plugin_config()}))
        wait_for(lambda: allocatable(kube_api, "gpu-node") == "1", what="the plugin registered one GPU")
        wait_for(lambda: ready(kube_api.get("Pod", "wants-gpu")), what="scheduled once the node has a GPU")
        assert not sim.errors


def test_a_node_label_change_makes_the_plugin_register_again(kube_api):
    # the ConfigMap has `default` and `time-slicing-4` (the other node uses it); relabelling t4 switches it
    nodes = [NodeSpec(**T4), NodeSpec(**{**T4, "name": "t4-shared", "time_slicing_replicas": 4})]
    with KubeletSimulator(kube_api.url, nodes=nodes, time_scale=SCALE) as sim:
        assert (allocatable(kube_api, "t4"), allocatable(kube_api, "t4-shared")) == ("1", "4")
        kube_api.registry.patch(kube_api.resource("Node"), None, "t4", "application/merge-patch+json",
                                b'{"metadata":{"labels":{"nvidia.com/device-plugin.config":"time-slicing-4"}}}', "k3s")
        wait_for(lambda: allocatable(kube_api, "t4") == "4", what="4 replicas advertised")
        [plugin] = [p for p in kube_api.list("Pod", "kube-system") if p["spec"]["nodeName"] == "t4"]
        name = plugin["metadata"]["name"]
        logs = sim.record_of("kube-system", name, "nvidia-device-plugin-ctr").current_logs()
        assert any('Received signal "hangup", restarting.' in line for line in logs)
        sidecar = sim.record_of("kube-system", name, "nvidia-device-plugin-sidecar").current_logs()
        assert any("Sent signal 1 to 'nvidia-device-plugin'" in line for line in sidecar)
        assert not sim.errors


def test_a_stopped_plugin_leaves_nothing_allocatable(kube_api):
    with KubeletSimulator(kube_api.url, time_scale=SCALE) as sim:
        kube_api.registry.delete(kube_api.resource("DaemonSet"), "kube-system", "nvidia-device-plugin")
        wait_for(lambda: allocatable(kube_api, "gpu-node") == "0", what="allocatable 0 once the plugin stopped")
        assert kube_api.get("Node", "gpu-node")["status"]["capacity"]["nvidia.com/gpu"] == "1", \
            "capacity stays for the kubelet's grace period"
        kube_api.create(pod("late", gpu_sleeper()))
        wait_for(lambda: messages(kube_api, "FailedScheduling"), what="unschedulable")
        assert not sim.errors


def test_time_sliced_pods_share_the_physical_gpu(kube_api, tmp_path):
    nodes = [NodeSpec(**T4, time_slicing_replicas=2)]
    with KubeletSimulator(kube_api.url, nodes=nodes, time_scale=SCALE, state_dir=tmp_path) as sim:
        for name in ("a", "b", "c"):
            kube_api.create(pod(name, gpu_sleeper()))
        wait_for(lambda: ready(kube_api.get("Pod", "a")) and ready(kube_api.get("Pod", "b")), what="two replicas")
        wait_for(lambda: kube_api.get("Pod", "c")["status"].get("conditions"), what="the third waits")
        uuid = sim.ledger("t4").devices[0].uuid
        for name in ("a", "b"):
            assert sim.record_of("default", name).instance.sandbox.env["NVIDIA_VISIBLE_DEVICES"] == uuid
        proc = tmp_path / "nodes" / "t4" / "gpu" / "proc"
        cgroups = {p.name: (p / "cgroup").read_text() for p in proc.iterdir()}
        for name in ("a", "b"):
            uid = kube_api.get("Pod", name)["metadata"]["uid"]
            assert sum(f"/pod{uid}/" in line for line in cgroups.values()) == 1
        assert not sim.errors


def test_a_process_leaves_the_ledger_when_it_has_exited_not_when_deleted(kube_api, tmp_path):
    # time scale 0.02: grace 20 s = 0.4 s; the process ignores SIGTERM and is killed at the end of it
    with KubeletSimulator(kube_api.url, time_scale=0.02, state_dir=tmp_path) as sim:
        kube_api.create(pod("holder", gpu_sleeper(), terminationGracePeriodSeconds=20))
        wait_for(lambda: ready(kube_api.get("Pod", "holder")), what="ready")
        [pid] = list(sim.ledger("gpu-node")._processes)  # pylint: disable=protected-access
        proc = Path(tmp_path, "nodes", "gpu-node", "gpu", "proc", str(pid))
        deleted = time.monotonic()
        kube_api.registry.delete(kube_api.resource("Pod"), "default", "holder")
        time.sleep(0.2)
        assert kube_api.get("Pod", "holder")["metadata"]["deletionTimestamp"] and proc.exists(), \
            "Terminating: the process still runs and still shows in /proc"
        wait_for(lambda: not pods_of(kube_api, "holder"), what="gone")
        [(exited, _event, _pid, _name)] = [h for h in sim.ledger("gpu-node").history if h[1] == "exit"]
        assert exited - deleted >= 20 * 0.02 and not proc.exists()


def test_two_vllms_at_090_cannot_share_a_time_sliced_t4(kube_api):
    # time scale 0.05: vLLM 0.10.2 refuses to start without 90% of the T4 free, exits 1 and crash-loops until
    # the first vLLM's process has exited and its memory was released
    args = ["--gpu-memory-utilization", "0.9"]
    probe = {"httpGet": {"path": "/health", "port": 8000}, "periodSeconds": 1, "failureThreshold": 60}
    nodes = [NodeSpec(**T4, time_slicing_replicas=2)]
    image = "vllm/vllm-openai:v0.10.2"
    with KubeletSimulator(kube_api.url, nodes=nodes, time_scale=SCALE, vllm_load_seconds=2,
                          vllm_shutdown_seconds=2) as sim:
        kube_api.create(deployment("first", vllm_container(startupProbe=probe, extra_args=args, image=image)))
        wait_for(lambda: available(kube_api, "first", 1), what="the first vLLM ready")
        [first] = pods_of(kube_api, "first")
        first_pid = sim.record_of("default", first["metadata"]["name"]).instance.pid
        kube_api.create(deployment("second", vllm_container(startupProbe=probe, extra_args=args, image=image)))
        [second] = wait_for(lambda: [p for p in pods_of(kube_api, "second") if status_of(p).get("restartCount")],
                            timeout=20, what="the second crashed")
        assert not available(kube_api, "second", 1)
        assert status_of(second)["lastState"]["terminated"]["exitCode"] == 1
        crashed = sim.record_of("default", second["metadata"]["name"]).previous_logs
        assert any("ValueError: Free memory on device" in line for line in crashed), crashed[-5:]
        deleted = time.monotonic()
        kube_api.registry.delete(kube_api.resource("Deployment"), "default", "first")
        wait_for(lambda: available(kube_api, "second", 1), timeout=30, what="the second ready once memory is free")
        ledger = sim.ledger("t4")
        exited = next(h[0] for h in ledger.history if h[1] == "exit" and h[2] == first_pid)
        released = ledger.released_at(first_pid)
        assert deleted < exited < released, "freed after the process exited (2 s shutdown), not at deletion"
        assert not sim.errors
