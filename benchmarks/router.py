"""What the GPU router adds: per-request proxy overhead, and a switch-triggered request beyond the model load.

The home lab (inventories/homelab) on the simulated k3s node at time scale 1.0 (probe periods, termination
grace, GPU memory release, the fake vLLM's load L and shutdown T all real time), the router deployed as the
gpu_router role's objects and running as its pod's own process (tests/harness/gpu_router_cluster.py). Loopback
only, bounded (a few hundred requests, one switch).

* overhead: the same small completion (``max_tokens=1``), alternately straight to the model server's pod and
  through the router, each over its own kept-alive connection, in the same run; the added latency at p50 and
  p99 is the router's p50/p99 minus the direct p50/p99 (goals: under 2 ms and under 10 ms);
* switch extra: a request for the other mode's model sent to the router while ml is active, from send to
  answer, minus the simulated load L of the target and shutdown T of the outgoing server: the switch's own
  overhead (drain, memory wait, probes, API calls, the router's hold and forward) (goal: under 2 s).

    .venv/bin/python benchmarks/router.py [--requests 300] [--load-seconds 3] [--shutdown-seconds 1]

Last line, exactly: ``router overhead_p50_ms=<ms> overhead_p99_ms=<ms> switch_extra_s=<s>``
"""

import argparse
import http.client
import json
import pathlib
import re
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / ".collections")]

from ansible_collections.baremetal.gpu.plugins.module_utils import kube as k8s  # noqa: E402
from tests.harness import fake_nvml  # noqa: E402
from tests.harness.fake_kube import FakeKubeAPI  # noqa: E402
from tests.harness.gpu_router_cluster import start_cluster  # noqa: E402


def summary_line(overhead_p50_ms, overhead_p99_ms, switch_extra_s):
    return "router overhead_p50_ms=%.3f overhead_p99_ms=%.3f switch_extra_s=%.3f" % (
        overhead_p50_ms, overhead_p99_ms, switch_extra_s)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


class Caller:
    """One kept-alive HTTP connection; ``post(path, body) -> (seconds, status, JSON)``."""

    def __init__(self, url):
        parsed = urllib.parse.urlsplit(url)
        self.connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=300)

    def post(self, path, body):
        data = json.dumps(body).encode()
        started = time.perf_counter()
        self.connection.request("POST", path, body=data, headers={"Content-Type": "application/json"})
        answer = self.connection.getresponse()
        payload = answer.read()
        return time.perf_counter() - started, answer.status, json.loads(payload)


def measure(requests, load, shutdown):
    with tempfile.TemporaryDirectory() as tmp_name, FakeKubeAPI() as api:
        tmp = pathlib.Path(tmp_name)
        kubeconfig = api.write_kubeconfig(tmp / "kubeconfig")
        kube = k8s.Kube.from_params({"kubeconfig": kubeconfig})
        nvml = fake_nvml.build(tmp)
        sim, cluster = start_cluster(api, kube, kubeconfig, nvml, tmp, 1.0, load_seconds=load,
                                     shutdown_seconds=shutdown)
        try:
            (router_url,) = cluster.deploy_router(replicas=1, timeout=120)
            direct, routed = Caller(cluster.model_pod_url("vllm-ml")), Caller(router_url)
            body = {"model": "vllm-qwen", "prompt": "hi", "max_tokens": 1}
            for caller in (direct, routed):  # warm up: connections, code paths
                for _warm in range(20):
                    caller.post("/v1/completions", body)
            times = {"direct": [], "router": []}
            for _round in range(requests):
                for name, caller in (("direct", direct), ("router", routed)):
                    seconds, status, _answer = caller.post("/v1/completions", body)
                    assert status == 200, status
                    times[name].append(seconds * 1000.0)
            switch_seconds, status, answer = Caller(router_url).post(
                "/v1/completions", {"model": "vllm-r1", "prompt": "hi", "max_tokens": 1})
            assert status == 200 and answer["model"] == "vllm-r1", answer
            phases = switch_phases(router_url)
        finally:
            kube.close()
            sim.stop()
    figures = {"requests": requests, "load_s": load, "shutdown_s": shutdown,
               "direct_p50_ms": round(statistics.median(times["direct"]), 3),
               "direct_p99_ms": round(percentile(times["direct"], 0.99), 3),
               "router_p50_ms": round(statistics.median(times["router"]), 3),
               "router_p99_ms": round(percentile(times["router"], 0.99), 3),
               "switch_request_s": round(switch_seconds, 3)}
    figures["overhead_p50_ms"] = round(figures["router_p50_ms"] - figures["direct_p50_ms"], 3)
    figures["overhead_p99_ms"] = round(figures["router_p99_ms"] - figures["direct_p99_ms"], 3)
    figures["switch_extra_s"] = round(switch_seconds - load - shutdown, 3)
    # where the extra goes: the switch's own phases (the router's /metrics), and what the request spent
    # outside the switch (hold, forward, the answer)
    figures["switch_phases_s"] = phases
    figures["outside_switch_s"] = round(switch_seconds - sum(phases.values()), 3)
    return figures


def switch_phases(router_url):
    """``{phase: seconds}`` of the router's switches, from its Prometheus text."""
    with urllib.request.urlopen(router_url + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    out = {}
    for line in text.splitlines():
        match = re.match(r'^gpu_router_switch_phase_seconds_sum\{phase="([^"]+)"\} ([0-9.eE+-]+)$', line)
        if match:
            out[match.group(1)] = round(float(match.group(2)), 3)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--load-seconds", type=float, default=3.0)
    parser.add_argument("--shutdown-seconds", type=float, default=1.0)
    args = parser.parse_args(argv)
    figures = measure(args.requests, args.load_seconds, args.shutdown_seconds)
    print(json.dumps(figures, sort_keys=True))
    phases = figures["switch_phases_s"]
    print("switch extra %.3f s: start phase beyond the load %.3f s (pod creation, container start, probe periods "
          "of the simulated kubelet: what the switcher alone pays, see benchmarks/gpu_mode.py), stop beyond the "
          "shutdown %.3f s, other phases %.3f s, outside the switch (the router's hold and forward) %.3f s"
          % (figures["switch_extra_s"], phases.get("start", 0.0) - figures["load_s"],
             phases.get("stop", 0.0) - figures["shutdown_s"],
             sum(v for k, v in phases.items() if k not in ("start", "stop")), figures["outside_switch_s"]))
    print("goals: overhead p50 < 2 ms, p99 < 10 ms, switch extra < 2 s")
    print(summary_line(figures["overhead_p50_ms"], figures["overhead_p99_ms"], figures["switch_extra_s"]))


if __name__ == "__main__":
    main()
