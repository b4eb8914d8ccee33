"""Figures of `scripts/fake-cluster`, measured as users get it (the command, a background process, HTTP):

- up_s: wall time of `scripts/fake-cluster up` until it returns with the API answering (median of --runs);
  goal under 1.5 s;
- api_p99_ms: 99th percentile latency of get, list and server-side apply of ConfigMaps (the worst of the
  three) while --watches watch streams (default 100, in another process) receive every change; goal under
  20 ms on 2 cores;
- ready_ms: kubelet simulator time from scaling a Deployment (1 GPU, vLLM image already on the node, no
  probes) to `replicas: 1` until its pod is Ready, seen through a watch (median of --rollouts); goal under
  100 ms.

Every cluster here runs at time scale 0.05 (`--time-scale`): the simulated delays (the node's 10 s status
update that shows the device plugin's GPUs, the vLLM shutdown between rollouts) would otherwise dominate
figures that are about the harness's own overhead.

    .venv/bin/python benchmarks/fake_cluster.py [--runs 5] [--watches 100] [--requests 300] [--rollouts 10]
    .venv/bin/python benchmarks/fake_cluster.py --quick      # small counts, for a smoke test

The last line is exactly `fake_cluster up_s=<s> api_p99_ms=<ms> ready_ms=<ms>`.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import queue
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMMAND = ROOT / "scripts" / "fake-cluster"
NAMESPACE = "bench"
TIME_SCALE = "0.05"


def percentile(values: List[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def client_tls(kubeconfig: str) -> ssl.SSLContext:
    """TLS as the kubeconfig says (k3s.yaml style): trust its CA, present its client certificate."""
    with open(kubeconfig, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    context = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    with tempfile.NamedTemporaryFile("wb", suffix=".pem") as pem:
        pem.write(base64.b64decode(user["client-certificate-data"]) + base64.b64decode(user["client-key-data"]))
        pem.flush()
        context.load_cert_chain(pem.name)
    return context


class Http:
    """One keep-alive connection to the API server."""

    def __init__(self, url: str, tls: ssl.SSLContext) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPSConnection(parsed.hostname, parsed.port, timeout=30, context=tls)

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json") -> Dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json", **({"Content-Type": content_type} if data is not None else {})}
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        payload = response.read()
        if response.status >= 400:
            raise RuntimeError(f"{method} {path}: {response.status} {payload[:300]!r}")
        return json.loads(payload)

    def close(self) -> None:
        self.conn.close()


def fake_cluster(*args: str, env: Dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(COMMAND), *args], env=env, capture_output=True, text=True, timeout=60, check=True)


def bench_up(runs: int, workdir: Path, env: Dict[str, str]) -> float:
    times = []
    for n in range(runs):
        kubeconfig = workdir / f"up-{n}.kubeconfig"
        started = time.perf_counter()
        fake_cluster("up", "--kubeconfig", str(kubeconfig), "--time-scale", TIME_SCALE, env=env)
        times.append(time.perf_counter() - started)
        fake_cluster("down", "--kubeconfig", str(kubeconfig), env=env)
    print(f"up: median {statistics.median(times):.3f} s, max {max(times):.3f} s (n={runs}, time scale {TIME_SCALE}, "
          "until the device plugin's GPUs are allocatable)", flush=True)
    return statistics.median(times)


# ---------------------------------------------------------------------- watch load (its own process)


def watcher_main(url: str, count: int, kubeconfig: str) -> int:
    """Open `count` watch streams on the bench namespace's ConfigMaps; print "ready" once all are open, and the
    number of events received when stdin closes."""
    import asyncio

    import aiohttp

    async def run() -> int:
        received = 0
        opened = 0
        all_open = asyncio.Event()

        async def stream(session: aiohttp.ClientSession) -> None:
            nonlocal received, opened
            params = {"watch": "true", "allowWatchBookmarks": "true"}
            async with session.get(f"{url}/api/v1/namespaces/{NAMESPACE}/configmaps", params=params) as resp:
                resp.raise_for_status()
                opened += 1
                if opened == count:
                    all_open.set()
                async for _line in resp.content:
                    received += 1

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None),
                                         connector=aiohttp.TCPConnector(limit=0, ssl=client_tls(kubeconfig))
                                         ) as session:
            tasks = [asyncio.create_task(stream(session)) for _stream in range(count)]
            await asyncio.wait_for(all_open.wait(), 30)
            print("ready", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        print(received, flush=True)
        return 0

    return asyncio.run(run())


def bench_api(url: str, watches: int, requests: int, kubeconfig: str) -> float:
    api = Http(url, client_tls(kubeconfig))
    api.request("POST", "/api/v1/namespaces",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    for n in range(20):
        api.request("POST", f"/api/v1/namespaces/{NAMESPACE}/configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{n}", "labels": {"bench": "yes"}},
            "data": {"n": "0", "payload": "x" * 512}})
    watcher = subprocess.Popen([sys.executable, __file__, "--watcher", url, str(watches), kubeconfig],
                               stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert watcher.stdout is not None and watcher.stdin is not None
        if watcher.stdout.readline().strip() != "ready":
            raise RuntimeError("the watch streams did not open")
        timings: Dict[str, List[float]] = {"get": [], "list": [], "apply": []}
        base = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
        for n in range(requests):
            name = f"cm-{n % 20}"
            for verb in ("get", "list", "apply"):
                started = time.perf_counter()
                if verb == "get":
                    api.request("GET", f"{base}/{name}")
                elif verb == "list":
                    api.request("GET", f"{base}?labelSelector=bench%3Dyes")
                else:
                    api.request("PATCH", f"{base}/{name}?fieldManager=bench&force=true", {
                        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                        "data": {"n": str(n + 1), "payload": "x" * 512}}, "application/apply-patch+yaml")
                timings[verb].append(time.perf_counter() - started)
        time.sleep(0.2)  # let the last events reach the watchers
        watcher.stdin.close()
        events = int(watcher.stdout.readline().strip() or 0)
    finally:
        if watcher.poll() is None:
            try:
                watcher.wait(10)
            except subprocess.TimeoutExpired:
                watcher.kill()
        watcher.stdout.close()  # type: ignore[union-attr]
        api.close()
    for verb, values in timings.items():
        print(f"{verb:<6} under {watches} watches: median {statistics.median(values) * 1000:6.2f} ms   "
              f"p99 {percentile(values, 0.99) * 1000:6.2f} ms   n={len(values)}", flush=True)
    print(f"watch events delivered: {events} (applies x watches = {requests * watches})", flush=True)
    if events < requests * watches:
        raise RuntimeError(f"the watchers saw {events} events, fewer than the {requests * watches} changes sent")
    return max(percentile(values, 0.99) for values in timings.values()) * 1000


# ---------------------------------------------------------------------- replicas: 1 -> Ready pod


def pod_ready(pod: Dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def watch_pods(url: str, selector: str, events: "queue.Queue[Any]", stop: threading.Event,
               tls: ssl.SSLContext) -> None:
    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPSConnection(parsed.hostname, parsed.port, timeout=60, context=tls)
    query = urllib.parse.urlencode({"watch": "true", "labelSelector": selector})
    conn.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods?{query}")
    response = conn.getresponse()
    events.put(("open", None, time.perf_counter()))
    try:
        while not stop.is_set():
            line = response.readline()
            if not line:
                break
            event = json.loads(line)
            events.put((event["type"], event["object"], time.perf_counter()))
    finally:
        conn.close()


def bench_ready(url: str, rollouts: int, kubeconfig: str) -> float:
    tls = client_tls(kubeconfig)
    api = Http(url, tls)
    name = "bench-ready"
    labels = {"app": name}
    api.request("POST", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "strategy": {"type": "Recreate"},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                     "name": "vllm", "image": "vllm/vllm-openai:v0.8.5.post1",
                     "args": ["--model", "Qwen/Qwen3-8B-AWQ", "--port", "8000", "--max-model-len", "8192"],
                     "resources": {"limits": {"nvidia.com/gpu": 1}}}]}}}})
    events: "queue.Queue[Any]" = queue.Queue()
    stop = threading.Event()
    thread = threading.Thread(target=watch_pods, args=(url, f"app={name}", events, stop, tls), daemon=True)
    thread.start()
    events.get(timeout=10)
    scale = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}/scale"
    times = []
    try:
        for _round in range(rollouts):
            started = time.perf_counter()
            api.request("PATCH", scale, {"spec": {"replicas": 1}}, "application/merge-patch+json")
            ready_at = None
            while ready_at is None:
                kind, pod, at = events.get(timeout=10)
                if kind in ("ADDED", "MODIFIED") and pod_ready(pod):
                    ready_at = at
            times.append(ready_at - started)
            api.request("PATCH", scale, {"spec": {"replicas": 0}}, "application/merge-patch+json")
            while True:  # the pod is gone before the next round
                kind, pod, _at = events.get(timeout=10)
                if kind == "DELETED":
                    break
    finally:
        stop.set()
        api.close()
    print(f"replicas: 1 -> Ready pod: median {statistics.median(times) * 1000:.1f} ms, "
          f"p90 {percentile(times, 0.9) * 1000:.1f} ms (n={rollouts})", flush=True)
    return statistics.median(times) * 1000


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="`up` runs (default 5)")
    parser.add_argument("--watches", type=int, default=100, help="concurrent watch streams (default 100)")
    parser.add_argument("--requests", type=int, default=300, help="requests of each verb (default 300)")
    parser.add_argument("--rollouts", type=int, default=10, help="replicas: 1 -> Ready rounds (default 10)")
    parser.add_argument("--quick", action="store_true", help="1 run, 10 watches, 30 requests, 2 rollouts")
    parser.add_argument("--watcher", nargs=3, metavar=("URL", "N", "KUBECONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.watcher:
        return watcher_main(args.watcher[0], int(args.watcher[1]), args.watcher[2])
    if args.quick:
        args.runs, args.watches, args.requests, args.rollouts = 1, 10, 30, 2

    with tempfile.TemporaryDirectory(prefix="fake-cluster-bench.") as tmp:
        workdir = Path(tmp)
        env = dict(os.environ)
        env.setdefault("BAREMETAL_GPU_FAKE_CLUSTER_STATE", str(workdir / "state"))
        up_s = bench_up(args.runs, workdir, env)
        kubeconfig = workdir / "bench.kubeconfig"
        fake_cluster("up", "--kubeconfig", str(kubeconfig), "--time-scale", TIME_SCALE, env=env)
        try:
            state = json.loads(fake_cluster("status", "--kubeconfig", str(kubeconfig), "--json", env=env).stdout)
            url = state[0]["url"]
            api_p99_ms = bench_api(url, args.watches, args.requests, str(kubeconfig))
            ready_ms = bench_ready(url, args.rollouts, str(kubeconfig))
        finally:
            fake_cluster("down", "--kubeconfig", str(kubeconfig), env=env)
    print(f"fake_cluster up_s={up_s:.2f} api_p99_ms={api_p99_ms:.1f} ready_ms={ready_ms:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
