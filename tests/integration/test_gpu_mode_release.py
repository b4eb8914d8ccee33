"""The switcher's GPU memory release wait, run as it runs on a node: a separate process polling NVML (the
stand-in libnvidia-ml.so.1 reading a simulated node's GPU memory ledger, live) and reading the node's /proc
(the ledger's export), while this test plays the node: processes exit, the driver releases memory later."""

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

from tests.harness.gpu_ledger import GpuLedger

ROOT = pathlib.Path(__file__).resolve().parents[2]
POD_A = "0b1e7d52-6c1a-4a4e-9a55-5b0c1f4e2a01"
POD_B = "7f3c2a10-1d2e-4f5a-8b9c-0d1e2f3a4b5c"
WAITER = r"""
import json, sys, time
sys.path[:0] = ['.', '.collections']
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import release
args = json.loads(sys.argv[1])
with release.NvmlPoller() as poller:
    before = release.snapshot(poller, args["pods"], args["proc_root"])
    print(json.dumps({"ready": True, "before": {str(k): v for k, v in before.items()}}), flush=True)
    sys.stdin.readline()  # the test says when the pods are stopped
    try:
        result = release.wait_released(args["pods"], args["timeout"], poller=poller, proc_root=args["proc_root"],
                                       before=before, keep_mib=args.get("keep_mib", 0),
                                       describe_pod=lambda uid: {args["pods"][0]: "ml/vllm-ml-abc"}.get(uid, uid))
        print(json.dumps({"released_at": result["released_at"], "polls": result["polls"]}), flush=True)
    except release.ReleaseTimeout as exc:
        print(json.dumps({"error": str(exc), "holders": exc.holders}), flush=True)
"""


@pytest.fixture
def node(tmp_path):
    ledger = GpuLedger.from_profile("gpu-node", "NVIDIA-GeForce-RTX-3060", release_delay=0.15,
                                    export_dir=tmp_path / "node")
    yield ledger
    ledger.close()


def start_waiter(fake_nvml_lib, ledger, pods, timeout=10, keep_mib=0):
    env = dict(os.environ, LD_LIBRARY_PATH=str(fake_nvml_lib), FAKE_NVML_DATA=str(ledger.export_dir / "nvml.txt"))
    args = {"pods": pods, "timeout": timeout, "proc_root": str(ledger.export_dir / "proc"), "keep_mib": keep_mib}
    waiter = subprocess.Popen([sys.executable, "-c", WAITER, json.dumps(args)], cwd=ROOT, env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = waiter.stdout.readline()
    assert first, waiter.stderr.read()
    return waiter, json.loads(first)


def go(waiter):
    waiter.stdin.write("go\n")
    waiter.stdin.flush()


def answer(waiter):
    line = waiter.stdout.readline()
    waiter.wait(10)
    assert line, waiter.stderr.read()
    return json.loads(line)


def vllm(ledger, pid, pod, mib):
    ledger.start_process(pid, "python3", pod_uid=pod, container="vllm", container_id="c%d" % pid, gpus=[0])
    ledger.allocate(pid, 0, mib)


def test_waits_while_the_stopped_pods_process_holds_memory_and_sees_the_release_within_a_poll(fake_nvml_lib, node):
    vllm(node, 4242, POD_A, 10800)
    waiter, first = start_waiter(fake_nvml_lib, node, [POD_A])
    assert first["before"] == {"0": {"4242": {"used_mib": 10800, "pod_uid": POD_A}}}  # the pod's process, found through its cgroup
    go(waiter)
    time.sleep(0.5)
    assert waiter.poll() is None  # still waiting: the process runs (its pod object may well be gone)
    node.exit_process(4242)
    result = answer(waiter)
    released = node.released_at(4242)
    assert released is not None and result["released_at"] >= released
    assert result["released_at"] - released < 0.25  # noticed within a poll or so, not a sleep later


def test_another_pods_process_on_the_same_gpu_does_not_block(fake_nvml_lib, node):
    vllm(node, 4242, POD_A, 6000)
    vllm(node, 5151, POD_B, 4000)  # a time-sliced neighbour that keeps running
    waiter = start_waiter(fake_nvml_lib, node, [POD_A])[0]
    go(waiter)
    node.exit_process(4242)
    assert "released_at" in answer(waiter)
    assert node.used_mib(0) == 4000


def test_memory_that_is_never_released_fails_naming_the_holder(fake_nvml_lib, node):
    vllm(node, 4242, POD_A, 10800)
    node.stick(4242)
    waiter = start_waiter(fake_nvml_lib, node, [POD_A], timeout=1)[0]
    go(waiter)
    node.exit_process(4242)
    result = answer(waiter)
    assert result["error"] == ("GPU memory of the stopped pods was not released within 1.0 s: GPU 0: pid 4242 "
                               "python3 10800 MiB (exited, memory not released yet, pod ml/vllm-ml-abc)")


def test_a_process_still_running_in_the_stopped_pod_is_named(fake_nvml_lib, node):
    vllm(node, 4242, POD_A, 10800)
    waiter = start_waiter(fake_nvml_lib, node, [POD_A], timeout=0.5)[0]
    go(waiter)
    result = answer(waiter)
    assert result["holders"][0]["why"] == "still running in a stopped pod"
    assert result["holders"][0]["pid"] == 4242


def test_a_sleeping_server_may_keep_its_context(fake_nvml_lib, node):
    vllm(node, 4242, POD_A, 10800)
    waiter = start_waiter(fake_nvml_lib, node, [POD_A], keep_mib=1200)[0]
    go(waiter)
    time.sleep(0.3)
    assert waiter.poll() is None
    node.set_usage(4242, 0, 1100)  # level-1 sleep: weights to host RAM, KV cache dropped, context kept
    assert "released_at" in answer(waiter)
