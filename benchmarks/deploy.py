"""Benchmark of the vllm role's deploy path: apply every inventory's manifests, then detect a server
turning healthy.

    .venv/bin/python benchmarks/deploy.py [--trials 5] [--load-seconds 0.5]

Every inventory of the reference deployments (inventories/homelab and inventories/examples/*: 8
workloads) is rendered with its own variables by the role itself: ansible-playbook runs the role's
render entry point with ``-i <inventory>`` (tests/harness/role_render.py), plus a Hugging Face token as
a user's vault would supply it. So the objects are every kind the inventories produce (Namespaces, the
token Secret, the weights-check ConfigMap, the EFS claim, Services, Ingresses, Deployments,
PodDisruptionBudgets, pre-pull DaemonSets), each in its own namespace. They are applied with the logic
of baremetal.gpu.vllm_deploy (kube.apply_all + kube.prune, a fresh client from a kubeconfig) against the
fake API server, with a kubelet simulator running a fake vLLM server per pod it can schedule.

* apply_s: the first, full apply (everything created) plus prune; the second apply (nothing changed)
  is printed too. Goal: under 2 s. Rendering (Ansible's start-up) is not part of it.
* health_detect_s: the worst, over --trials rollouts of one workload, of the time between its fake
  vLLM server becoming healthy (the moment its state turns "ready") and health.wait_serving (the logic
  of baremetal.gpu.vllm_health, through the API server's service proxy) returning. This includes the
  simulated kubelet's startup and readiness probes at the role's real periods (time scale 1.0) and the
  endpoints update, as on a real cluster: it is bounded by one startup probe period.

The Ansible process start (several seconds on a small machine) is not part of either figure.
Last line, always: ``deploy apply_s=<seconds> health_detect_s=<seconds> workloads=<count>``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / ".collections")]

import yaml  # noqa: E402

from ansible_collections.baremetal.gpu.plugins.module_utils import health  # noqa: E402
from ansible_collections.baremetal.gpu.plugins.module_utils import kube as k8s  # noqa: E402
from tests.harness.fake_kube import FakeKubeAPI  # noqa: E402
from tests.harness.kubelet import KubeletSimulator, NodeSpec  # noqa: E402
from tests.harness.role_render import INVENTORIES, render  # noqa: E402

NAMESPACE = "bench"
PROBE = "bench-probe"
VAULT_TOKEN = "hf_BenchmarkTokenFromTheVault"  # what an inventory's vault would hand the role


def render_inventories():
    """Every inventory rendered by the role with its own variables: (manifests, workload count)."""
    manifests, workloads = [], 0
    for name in INVENTORIES:
        rendered = render(name, {"vllm_hf_token": VAULT_TOKEN})
        manifests += rendered.manifests
        workloads += len(rendered.plan["workloads"])
    return manifests, workloads


def render_probe():
    """The health-detection workload (the home lab's ml entry, own namespace, no placement, no GPU mode),
    rendered by the role at 0 and at 1 replica: {"off": manifests, "on": manifests}."""
    homelab = yaml.safe_load((INVENTORIES["homelab"] / "group_vars" / "all.yml").read_text())
    probe = dict(copy.deepcopy(homelab["vllm_catalog"][0]), name=PROBE, served_model_names=["vllm-bench"])
    for key in ("service", "ingress"):
        probe.pop(key)
    extra = {"vllm_namespace": NAMESPACE, "vllm_part_of": "benchmark", "vllm_node_selector": {},
             "vllm_prepull": False, "vllm_ingress_enabled": False, "vllm_gpu_nodes": []}
    return dict((state, render("homelab", dict(extra, vllm_catalog=[dict(probe, replicas=replicas)])).manifests)
                for state, replicas in (("off", 0), ("on", 1)))


class Backends:
    """Load times of the fake vLLM programs (simulated seconds, at time scale 1.0) and where to find the
    probed workload's server."""

    def __init__(self, load_seconds):
        self.load_seconds = load_seconds
        self.sim = None

    def __call__(self, ctx):
        instance = ctx.pod["metadata"]["labels"].get("app.kubernetes.io/instance", "")
        return {"load_seconds": self.load_seconds if instance.endswith(PROBE) else 0.05}

    def probed(self, kube):
        pods = kube.items("v1", "Pod", NAMESPACE, label_selector="app.kubernetes.io/instance=vllm-" + PROBE)
        for pod in pods:
            if not pod["metadata"].get("deletionTimestamp"):
                program = self.sim.backend_of(NAMESPACE, pod["metadata"]["name"])
                if program is not None and getattr(program, "server", None) is not None:
                    return program.server
        return None


def ready_time(server, timeout):
    """Monotonic time at which ``server`` turned ready, watched at 1 ms resolution."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.state == "ready":
            return time.monotonic()
        time.sleep(0.001)
    raise RuntimeError("the fake server never became ready")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--load-seconds", type=float, default=0.5, help="load time of the probed server")
    args = parser.parse_args(argv)

    manifests, workload_count = render_inventories()
    probe_manifests = render_probe()
    namespaces = sorted(set(m["metadata"]["namespace"] for m in manifests if m["metadata"].get("namespace")))
    kinds = {}
    for manifest in manifests:
        kinds[manifest["kind"]] = kinds.get(manifest["kind"], 0) + 1
    print("inventories: %d workloads, %d objects (%s) in namespaces %s" % (
        workload_count, len(manifests), ", ".join("%d %s" % (n, k) for k, n in sorted(kinds.items())),
        ", ".join(namespaces)))

    backends = Backends(args.load_seconds)
    spec = next(m for m in probe_manifests["on"] if m["kind"] == "Deployment")["spec"]["template"]["spec"]
    periods = "/".join(str(spec["containers"][0][p]["periodSeconds"]) for p in ("startupProbe", "readinessProbe"))
    with tempfile.TemporaryDirectory() as tmp, FakeKubeAPI() as api, \
            KubeletSimulator(api.url, nodes=[NodeSpec(name="bench-node", gpus=64, cpu="512", memory="4Ti")],
                             time_scale=1.0, vllm_overrides=backends) as sim:
        backends.sim = sim
        kubeconfig = api.write_kubeconfig(Path(tmp) / "kubeconfig")

        started = time.monotonic()
        kube = k8s.Kube.from_params({"kubeconfig": kubeconfig})
        results, applied = k8s.apply_all(kube, manifests)
        pruned = k8s.prune(kube, applied, set(namespaces))
        apply_s = time.monotonic() - started
        assert all(r["action"] == "created" for r in results) and not pruned, results
        print("first apply: %.3f s for %d objects (%d API requests), prune included" % (
            apply_s, len(results), kube.requests))
        kube.close()

        started = time.monotonic()
        kube = k8s.Kube.from_params({"kubeconfig": kubeconfig})
        again, applied = k8s.apply_all(kube, manifests)
        k8s.prune(kube, applied, set(namespaces))
        second_s = time.monotonic() - started
        assert not any(r["changed"] for r in again), [r for r in again if r["changed"]]
        print("second apply (unchanged): %.3f s" % second_s)

        latencies = []
        for trial in range(args.trials):
            for mode in ("off", "on"):  # like a GPU mode switch: scaled to 0, then to 1
                k8s.apply_all(kube, probe_manifests[mode])
                if mode == "off":  # the old pod is gone before the new one starts
                    k8s.wait_ready(kube, [("apps/v1", "Deployment", NAMESPACE, "vllm-" + PROBE)], timeout=30)
            fetch = health.proxy_fetch(kube, NAMESPACE, "vllm-" + PROBE, 8000)
            waiter = {}

            def watch_ready():
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    server = backends.probed(watcher_kube)
                    if server is not None:
                        waiter["ready_at"] = ready_time(server, 30)
                        return
                    time.sleep(0.001)

            watcher_kube = k8s.Kube.from_params({"kubeconfig": kubeconfig})
            thread = threading.Thread(target=watch_ready, daemon=True)
            thread.start()
            result = health.wait_serving(fetch, served_model_name="vllm-bench", timeout=30)
            returned = time.monotonic()
            thread.join(5)
            watcher_kube.close()
            latency = returned - waiter["ready_at"]
            latencies.append(latency)
            print("trial %d: healthy after %.3f s of waiting, detected %.3f s after the server was ready "
                  "(%d polls)" % (trial + 1, result["elapsed"]["total"], latency, result["attempts"]["health"]))
        kube.close()

    health_detect_s = max(latencies)
    print("health detection: median %.3f s, worst %.3f s over %d trials, through real probe periods (time scale "
          "1.0; the role's startup and readiness probes every %s s: detection is bounded by one startup period)" % (
              statistics.median(latencies), health_detect_s, len(latencies), periods))
    print("goals: apply under 2 s %s" % ("met" if apply_s < 2 else "MISSED"))
    print("deploy apply_s=%.3f health_detect_s=%.3f workloads=%d" % (apply_s, health_detect_s, workload_count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
