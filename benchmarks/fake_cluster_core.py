"""Benchmark of the fake cluster's core paths: how fast the fake API server answers and how fast
the kubelet simulator takes a 1-replica Deployment to Ready (zero delays).

    .venv/bin/python benchmarks/fake_cluster_core.py [--rollouts 20] [--patches 500]

Prints medians and 90th percentiles; no thresholds (the test suite asserts the latency target).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness.fake_kube import FakeKubeAPI  # noqa: E402
from tests.harness.kubelet_sim import KubeletSimulator  # noqa: E402


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def report(name, seconds):
    print(f"{name:<38} median {statistics.median(seconds) * 1000:7.2f} ms   "
          f"p90 {percentile(seconds, 0.9) * 1000:7.2f} ms   n={len(seconds)}")


def deployment(name):
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.8.5.post1",
                                                           "resources": {"limits": {"nvidia.com/gpu": 1}}}]}}}}


def bench_patches(api, count):
    res = api.resource("ConfigMap")
    api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bench"}, "data": {"n": "0"}})
    times = []
    for n in range(count):
        body = json.dumps({"data": {"n": str(n + 1)}}).encode()
        started = time.perf_counter()
        api.registry.patch(res, "default", "bench", "application/merge-patch+json", body, "bench")
        times.append(time.perf_counter() - started)
    report("in-process merge patch (ConfigMap)", times)


def bench_rollouts(api, count):
    ready = {}

    def listener(event):
        status = event.obj.get("status") or {}
        if event.resource.kind == "Deployment" and status.get("availableReplicas") == 1:
            ready.setdefault(event.obj["metadata"]["name"], time.perf_counter())

    api.store.add_listener(listener)
    times = []
    with KubeletSimulator(api.url):
        for n in range(count):
            name = f"bench-{n}"
            started = time.perf_counter()
            api.create(deployment(name))
            while name not in ready and time.perf_counter() - started < 10:
                time.sleep(0.001)
            times.append(ready.get(name, time.perf_counter()) - started)
            api.registry.delete(api.resource("Deployment"), "default", name)
            while api.list("Pod", "default"):
                time.sleep(0.002)
    report("Deployment (1 replica, 1 GPU) to Ready", times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=20)
    parser.add_argument("--patches", type=int, default=500)
    args = parser.parse_args()
    with FakeKubeAPI() as api:
        bench_patches(api, args.patches)
        bench_rollouts(api, args.rollouts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
