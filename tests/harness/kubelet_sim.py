"""Kubelet simulator: the controllers, scheduler and kubelet of a small GPU cluster, driven by
the API server over HTTP (list + watch, never polling) exactly like the real components.

    with FakeKubeAPI() as api, KubeletSimulator(api.url) as sim:
        ...  # apply a Deployment; its pods get scheduled, "run" and turn Ready

What it does, level-triggered from an informer cache (every pass reconciles everything):
- deployment controller: Deployment -> ReplicaSet (pod-template-hash) with Recreate and a simple
  RollingUpdate, deployment status and conditions as kube-controller-manager writes them;
- replicaset, statefulset (ordered) and daemonset controllers; an endpoints controller;
- scheduler: nodeSelector, required node affinity, taints, cpu/memory/`nvidia.com/gpu` requests
  against allocatable minus bound pods; FailedScheduling events; retries when capacity frees;
- kubelet for its own nodes: pod phases and container states, events, optional backends from
  `vllm_factory(pod)` with HTTP readiness/liveness probes, crash -> restart/CrashLoopBackOff,
  graceful termination, and a kubelet HTTP endpoint serving container logs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import aiohttp
from aiohttp import web

from tests.harness.fake_kube.selectors import match_expression, match_label_selector
from tests.harness.fake_kube.tls import trusted_context

Obj = Dict[str, Any]
Key = Tuple[str, str]  # (namespace, name)

CONTROLLER = "kube-controller-manager"
SCHEDULER = "kube-scheduler"
KUBELET = "kubelet"
MERGE = "application/merge-patch+json"
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass
class NodeSpec:
    name: str = "gpu-node"
    gpus: int = 1
    gpu_product: str = "NVIDIA-GeForce-RTX-3060"
    gpu_memory_mib: int = 12288
    time_slicing_replicas: int = 1
    cpu: str = "16"
    memory: str = "64Gi"
    pods: int = 110
    labels: Dict[str, str] = field(default_factory=dict)
    taints: List[Dict[str, str]] = field(default_factory=list)


@dataclass
class Delays:
    """Seconds each step takes. All zero: a 1-replica Deployment is Ready in a few milliseconds."""

    schedule: float = 0.0
    pull: float = 0.0
    start: float = 0.0
    ready: float = 0.0
    terminate_grace: float = 0.0
    crash_backoff: float = 0.0  # before a crashed container restarts (doubles per restart, max 8x)


# ---------------------------------------------------------------------- small pure helpers


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def meta(obj: Obj) -> Obj:
    return obj.setdefault("metadata", {})


def key_of(obj: Obj) -> Key:
    m = obj.get("metadata") or {}
    return (m.get("namespace", ""), m.get("name", ""))


def rv_of(obj: Obj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion", 0))
    except ValueError:
        return 0


def controller_uid(obj: Obj) -> Optional[str]:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


def owner_ref(owner: Obj, kind: str, api_version: str) -> Obj:
    return {"apiVersion": api_version, "kind": kind, "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def template_hash(template: Obj) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in digest[:10])


def terminating(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def pod_phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase", "Pending")


def pod_active(pod: Obj) -> bool:
    return not terminating(pod) and pod_phase(pod) not in ("Succeeded", "Failed")


def pod_ready(pod: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def parse_quantity(value: Any) -> float:
    """Kubernetes resource quantities: 500m, 2, 1Gi, 512M, 1e3."""
    text = str(value).strip()
    suffixes = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60,
                "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "m": 1e-3}
    for suffix in sorted(suffixes, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * suffixes[suffix]
    return float(text)


def pod_requests(pod: Obj) -> Dict[str, float]:
    """Requests per resource (limits stand in for missing requests, as apiserver defaulting does)."""
    total: Dict[str, float] = {}
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        merged = dict(resources.get("limits") or {})
        merged.update(resources.get("requests") or {})
        for name, qty in merged.items():
            total[name] = total.get(name, 0.0) + parse_quantity(qty)
    return total


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """intstr percent-or-int resolution used by maxSurge / maxUnavailable."""
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100.0
        return int(-(-exact // 1)) if round_up else int(exact // 1)
    return int(value or 0)


def node_matches_term(term: Obj, node: Obj) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    fields = {"metadata.name": node["metadata"]["name"]}
    return all(match_expression(e, labels) for e in term.get("matchExpressions") or []) and \
        all(match_expression(e, fields) for e in term.get("matchFields") or [])


def node_selected(pod: Obj, node: Obj) -> bool:
    spec = pod.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms")
    if terms:
        return any(node_matches_term(t, node) for t in terms)
    return True


def untolerated_taint(pod: Obj, node: Obj) -> Optional[Obj]:
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        tolerated = False
        for tol in tolerations:
            if tol.get("effect") and tol.get("effect") != taint.get("effect"):
                continue
            if tol.get("operator") == "Exists" and (not tol.get("key") or tol.get("key") == taint.get("key")):
                tolerated = True
            elif tol.get("key") == taint.get("key") and tol.get("value", "") == taint.get("value", ""):
                tolerated = True
        if not tolerated:
            return taint
    return None


def node_ready(node: Obj) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def condition(type_: str, status: bool, reason: str = "", message: str = "",
              previous: Optional[List[Obj]] = None, probe_times: bool = False) -> Obj:
    """A status condition keeping lastTransitionTime while the status does not change."""
    value = "True" if status else "False"
    stamp = now_iso()
    for old in previous or []:
        if old.get("type") == type_ and old.get("status") == value:
            stamp = old.get("lastTransitionTime", stamp)
    cond = {"type": type_, "status": value, "lastTransitionTime": stamp}
    if probe_times:
        cond["lastProbeTime"] = None
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def compact(status: Obj, omit_zero: Tuple[str, ...]) -> Obj:
    """Drop zero-valued `omitempty` integer fields, as the Go JSON encoder does."""
    return {k: v for k, v in status.items() if not (k in omit_zero and v == 0)}


class RequestFailed(RuntimeError):
    """An API request the simulator made was refused (status and Status body attached)."""

    def __init__(self, message: str, status: int, body: Obj) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class Backend:
    """What `vllm_factory` returns: `.start() -> url`, `.stop()`; optional `.logs()`, `.exit_code`
    or `.poll()` (None while running). Documented here; any object with these methods works."""


@dataclass
class Container:
    """The kubelet's view of one running container of one pod."""

    name: str
    backend: Any = None
    url: Optional[str] = None
    restarts: int = 0
    started_at: str = ""
    last_terminated: Optional[Obj] = None
    logs: List[str] = field(default_factory=list)
    previous_logs: List[str] = field(default_factory=list)


@dataclass
class PodRuntime:
    uid: str
    key: Key
    node: str
    ip: str
    task: Optional[asyncio.Task] = None
    containers: Dict[str, Container] = field(default_factory=dict)
    ports: List[Tuple[str, int]] = field(default_factory=list)


def fake_vllm_factory(load_seconds: float = 0.0, **overrides: Any) -> Callable[[Obj], Any]:
    """A `vllm_factory` that runs tests.harness.fake_vllm's FakeVLLMServer for a pod's main container,
    configured from its command and args (bound to a free local port, not the container port)."""

    def factory(pod: Obj) -> Any:
        from tests.harness.fake_vllm import FakeVLLMServer  # imported lazily: optional dependency

        container = ((pod.get("spec") or {}).get("containers") or [{}])[0]
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        options = {"load_seconds": load_seconds, "port": 0, "host": "127.0.0.1"}
        options.update(overrides)
        return FakeVLLMServer.from_args(argv, **options)

    return factory


# ---------------------------------------------------------------------- the simulator


class KubeletSimulator:
    WATCHED = {
        "deployments": "/apis/apps/v1/deployments",
        "replicasets": "/apis/apps/v1/replicasets",
        "statefulsets": "/apis/apps/v1/statefulsets",
        "daemonsets": "/apis/apps/v1/daemonsets",
        "pods": "/api/v1/pods",
        "nodes": "/api/v1/nodes",
        "services": "/api/v1/services",
        "endpoints": "/api/v1/endpoints",
    }

    def __init__(self, api_url: str, nodes: Optional[List[NodeSpec]] = None, delays: Optional[Delays] = None,
                 vllm_factory: Optional[Callable[[Obj], Any]] = None, token: Optional[str] = "fake-kube-token",
                 probe_interval: float = 0.05, steady_probe_interval: float = 1.0, ssl: Any = None) -> None:
        self.api_url = api_url.rstrip("/")
        # the API server's CA: given, else the one of the fake API server running at api_url in this process
        self.ssl = ssl if ssl is not None else trusted_context(self.api_url)
        self.nodes = nodes if nodes is not None else [NodeSpec()]
        self.delays = delays or Delays()
        self.vllm_factory = vllm_factory
        self.token = token
        # probes poll fast until a container is ready, then settle (a real kubelet uses periodSeconds)
        self.probe_interval = min(probe_interval, 0.2)
        self.steady_probe_interval = steady_probe_interval
        self.cache: Dict[str, Dict[Key, Obj]] = {name: {} for name in self.WATCHED}
        self._tombstones: Dict[Tuple[str, Key], int] = {}
        self._runtimes: Dict[str, PodRuntime] = {}
        self._unschedulable_reported: Dict[str, str] = {}
        self._assumed: Dict[str, str] = {}  # pod uid -> node, chosen but not bound yet (scheduler cache)
        self._create_failures: Dict[str, str] = {}  # owner uid -> last pod creation error
        self._retry_pending = False
        self._ip_next: Dict[str, int] = {}
        self._background: set = set()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._session: Optional[aiohttp.ClientSession] = None
        self._dirty: Optional[asyncio.Event] = None
        self._stopping = False
        self._kubelet_runner: Optional[web.AppRunner] = None
        self.kubelet_port = 0
        self.errors: List[str] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "KubeletSimulator":
        ready = threading.Event()
        failure: List[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self._startup())
            except BaseException as err:
                failure.append(err)
                ready.set()
                loop.run_until_complete(self._teardown())
                loop.run_until_complete(loop.shutdown_default_executor())
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

        self._thread = threading.Thread(target=run, name="kubelet-sim", daemon=True)
        self._thread.start()
        ready.wait(15)
        if failure:
            self._thread.join(5)
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._teardown(), loop)
            try:
                future.result(15)
            finally:
                loop.call_soon_threadsafe(loop.stop)
        thread.join(15)
        self._thread = None
        self._loop = None

    def __enter__(self) -> "KubeletSimulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    async def _startup(self) -> None:
        headers = {"User-Agent": "kubelet-sim/v1.32.5+k3s1", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self._session = aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=None,
                                                                                             sock_connect=5),
                                              connector=aiohttp.TCPConnector(ssl=self.ssl))
        self._dirty = asyncio.Event()
        await self._start_kubelet_server()
        for spec in self.nodes:
            await self._register_node(spec)
        listed = []
        for name, path in self.WATCHED.items():
            first = asyncio.get_running_loop().create_future()
            listed.append(first)
            self._spawn(self._informer(name, path, first))
        await asyncio.wait_for(asyncio.gather(*listed), 10)
        self._spawn(self._reconcile_loop())

    async def _teardown(self) -> None:
        self._stopping = True
        if self._dirty:
            self._dirty.set()
        runtimes = list(self._runtimes.values())
        for runtime in runtimes:
            if runtime.task and not runtime.task.done():
                runtime.task.cancel()
        for runtime in runtimes:
            await self._stop_backends(runtime)
        current = asyncio.current_task()
        pending = [t for t in self._background if t is not current and not t.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, *[r.task for r in runtimes if r.task], return_exceptions=True)
        if self._kubelet_runner:
            await self._kubelet_runner.cleanup()
        if self._session:
            await self._session.close()

    def _retry_later(self, delay: float = 0.5) -> None:
        """Run another reconcile pass after `delay` (failed creations are retried, like a workqueue)."""
        if self._retry_pending or self._stopping:
            return
        self._retry_pending = True

        async def poke() -> None:
            await asyncio.sleep(delay)
            self._retry_pending = False
            if self._dirty is not None:
                self._dirty.set()

        self._spawn(poke())

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _run_in_thread(self, fn: Callable, *args: Any) -> Any:
        return asyncio.get_running_loop().run_in_executor(None, fn, *args)

    # ------------------------------------------------------------------ HTTP to the API server
    async def _request(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
                       params: Optional[Dict[str, str]] = None, ok_missing: bool = True,
                       tolerate: Tuple[int, ...] = ()) -> Optional[Obj]:
        assert self._session is not None
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if body is not None else {}
        async with self._session.request(method, self.api_url + path, data=data, headers=headers,
                                         params=params) as resp:
            text = await resp.text()
            if resp.status == 404 and ok_missing:
                return None
            if resp.status == 409 and ok_missing:
                return None
            if resp.status >= 400:
                message = f"{method} {path}: {resp.status} {text[:300]}"
                if resp.status not in tolerate:
                    self.errors.append(message)
                try:
                    body = json.loads(text)
                except ValueError:
                    body = {"message": text}
                raise RequestFailed(message, resp.status, body)
            result = json.loads(text) if text else None
        if isinstance(result, dict) and result.get("kind") not in (None, "Status") and "metadata" in result:
            self._remember_write(path, result)
        return result

    def _remember_write(self, path: str, obj: Obj) -> None:
        """Write-through: our own writes are visible to the next reconcile pass immediately."""
        kind = obj.get("kind", "")
        cache_name = {"Deployment": "deployments", "ReplicaSet": "replicasets", "StatefulSet": "statefulsets",
                      "DaemonSet": "daemonsets", "Pod": "pods", "Node": "nodes", "Service": "services",
                      "Endpoints": "endpoints"}.get(kind)
        if cache_name:
            self._apply_event(cache_name, "MODIFIED", obj)

    @staticmethod
    def _path(api_version: str, plural: str, namespace: Optional[str], name: Optional[str] = None,
              sub: Optional[str] = None) -> str:
        base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        if namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base

    async def _patch(self, api_version: str, plural: str, obj: Obj, body: Obj, sub: Optional[str] = None,
                     manager: str = CONTROLLER) -> Optional[Obj]:
        namespace, name = key_of(obj)
        return await self._request("PATCH", self._path(api_version, plural, namespace or None, name, sub), body,
                                   MERGE, params={"fieldManager": manager})

    async def _create(self, api_version: str, plural: str, namespace: Optional[str], body: Obj,
                      manager: str = CONTROLLER) -> Optional[Obj]:
        return await self._request("POST", self._path(api_version, plural, namespace), body,
                                   params={"fieldManager": manager})

    async def _delete(self, api_version: str, plural: str, obj: Obj, grace: Optional[int] = None) -> None:
        namespace, name = key_of(obj)
        body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if grace is not None:
            body["gracePeriodSeconds"] = grace
        result = await self._request("DELETE", self._path(api_version, plural, namespace or None, name), body)
        if result is not None and result.get("kind") == "Status" and result.get("status") == "Success":
            cache_name = plural if plural in self.cache else None
            if cache_name:
                self._apply_event(cache_name, "DELETED", obj)

    def event(self, involved: Obj, reason: str, message: str, type_: str = "Normal",
              component: str = KUBELET, host: Optional[str] = None, field_path: Optional[str] = None) -> None:
        """Post a core/v1 Event in the background (events never block the critical path)."""
        m = involved.get("metadata") or {}
        namespace = m.get("namespace") or "default"
        ref = {"kind": involved.get("kind"), "namespace": m.get("namespace", ""), "name": m.get("name"),
               "uid": m.get("uid"), "apiVersion": involved.get("apiVersion"),
               "resourceVersion": m.get("resourceVersion")}
        if field_path:
            ref["fieldPath"] = field_path
        stamp = now_iso()
        body = {"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": f"{m.get('name')}.{random.getrandbits(64):016x}", "namespace": namespace},
                "involvedObject": ref, "reason": reason, "message": message, "type": type_,
                "source": {"component": component, **({"host": host} if host else {})},
                "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1, "eventTime": None,
                "reportingComponent": component, "reportingInstance": host or ""}
        if self._stopping:
            return

        async def post() -> None:
            try:
                await self._create("v1", "events", namespace, body, component)
            except (RuntimeError, aiohttp.ClientError):
                pass

        self._spawn(post())

    # ------------------------------------------------------------------ informers
    def _apply_event(self, cache_name: str, event_type: str, obj: Obj) -> None:
        key = key_of(obj)
        rv = rv_of(obj)
        cache = self.cache[cache_name]
        tomb = self._tombstones.get((cache_name, key))
        if event_type == "DELETED":
            current = cache.get(key)
            if current is not None and (current.get("metadata") or {}).get("uid") != (obj.get("metadata") or {}).get(
                    "uid") and rv_of(current) > rv:
                return
            cache.pop(key, None)
            self._tombstones[(cache_name, key)] = max(rv, tomb or 0)
        else:
            if tomb is not None and rv <= tomb:
                return
            current = cache.get(key)
            if current is not None and rv_of(current) >= rv:
                return
            cache[key] = obj
        if self._dirty is not None:
            self._dirty.set()

    async def _informer(self, name: str, path: str, first: "asyncio.Future[None]") -> None:
        assert self._session is not None
        while not self._stopping:
            try:
                async with self._session.get(self.api_url + path) as resp:
                    listing = await resp.json()
                rv = listing["metadata"]["resourceVersion"]
                fresh = {key_of(o): o for o in listing.get("items") or []}
                for key in list(self.cache[name]):
                    if key not in fresh:
                        self._apply_event(name, "DELETED", self.cache[name][key])
                for obj in fresh.values():
                    obj.setdefault("kind", {"deployments": "Deployment", "replicasets": "ReplicaSet",
                                            "statefulsets": "StatefulSet", "daemonsets": "DaemonSet",
                                            "pods": "Pod", "nodes": "Node", "services": "Service",
                                            "endpoints": "Endpoints"}[name])
                    self._apply_event(name, "MODIFIED", obj)
                if not first.done():
                    first.set_result(None)
                params = {"watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true",
                          "timeoutSeconds": "300"}
                async with self._session.get(self.api_url + path, params=params) as resp:
                    async for line in resp.content:
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            break  # 410 Gone: relist
                        if event["type"] == "BOOKMARK":
                            continue
                        self._apply_event(name, event["type"], event["object"])
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, ValueError, KeyError, asyncio.TimeoutError):
                if self._stopping:
                    return
                await asyncio.sleep(0.05)

    # ------------------------------------------------------------------ reconcile
    async def _reconcile_loop(self) -> None:
        assert self._dirty is not None
        while not self._stopping:
            await self._dirty.wait()
            self._dirty.clear()
            if self._stopping:
                return
            try:
                await self.reconcile_once()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # keep running; tests read .errors
                self.errors.append(f"reconcile: {err!r}")
                await asyncio.sleep(0.01)
                self._dirty.set()

    async def reconcile_once(self) -> None:
        for deployment in list(self.cache["deployments"].values()):
            await self._sync_deployment(deployment)
        for rs in list(self.cache["replicasets"].values()):
            await self._sync_replicaset(rs)
        for sts in list(self.cache["statefulsets"].values()):
            await self._sync_statefulset(sts)
        for ds in list(self.cache["daemonsets"].values()):
            await self._sync_daemonset(ds)
        await self._schedule()
        self._sync_kubelet()
        for svc in list(self.cache["services"].values()):
            await self._sync_endpoints(svc)

    def _owned(self, cache_name: str, owner: Obj) -> List[Obj]:
        uid = owner["metadata"]["uid"]
        namespace = owner["metadata"].get("namespace", "")
        return [o for k, o in self.cache[cache_name].items() if k[0] == namespace and controller_uid(o) == uid]

    # ------------------------------------------------------------------ deployments
    async def _sync_deployment(self, deploy: Obj) -> None:
        if terminating(deploy):
            return
        spec = deploy.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        pod_hash = template_hash(template)
        owned = self._owned("replicasets", deploy)
        new_rs = next((rs for rs in owned
                       if ((rs["metadata"].get("labels") or {}).get("pod-template-hash")) == pod_hash), None)
        old = [rs for rs in owned if rs is not new_rs]
        strategy = (spec.get("strategy") or {}).get("type", "RollingUpdate")
        revision = max([int((rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", 0))
                        for rs in owned] + [0])
        if spec.get("paused"):
            await self._deployment_status(deploy, new_rs, owned)
            return
        if new_rs is None:
            initial = 0 if (strategy == "Recreate" and any(self._rs_pods(rs) for rs in old)) else replicas
            if strategy == "RollingUpdate" and old:
                surge = scaled_value((spec.get("strategy") or {}).get("rollingUpdate", {}).get("maxSurge", "25%"),
                                     replicas, True)
                current = sum(int((rs.get("spec") or {}).get("replicas", 0)) for rs in old)
                initial = max(0, min(replicas, replicas + surge - current))
            new_rs = await self._create_replicaset(deploy, pod_hash, initial, revision + 1)
            if new_rs is None:
                return
            self.event(deploy, "ScalingReplicaSet", f"Scaled up replica set {new_rs['metadata']['name']} from 0 "
                                                    f"to {initial}", component="deployment-controller")
            owned = owned + [new_rs]
        elif (new_rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision") != str(
                revision) and old:
            await self._patch("apps/v1", "replicasets", new_rs, {"metadata": {"annotations": {
                "deployment.kubernetes.io/revision": str(revision + 1)}}})
        if strategy == "Recreate":
            await self._rollout_recreate(deploy, new_rs, old, replicas)
        else:
            await self._rollout_rolling(deploy, new_rs, old, replicas)
        await self._deployment_status(deploy, new_rs, self._owned("replicasets", deploy))

    def _rs_pods(self, rs: Obj) -> List[Obj]:
        """Pods of a ReplicaSet that still exist and have not finished (terminating ones included)."""
        return [p for p in self._owned("pods", rs) if pod_phase(p) not in ("Succeeded", "Failed")]

    async def _create_replicaset(self, deploy: Obj, pod_hash: str, replicas: int, revision: int) -> Optional[Obj]:
        spec = deploy["spec"]
        template = json.loads(json.dumps(spec.get("template") or {}))
        template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = pod_hash
        selector = json.loads(json.dumps(spec.get("selector") or {}))
        selector.setdefault("matchLabels", {})["pod-template-hash"] = pod_hash
        name = f"{deploy['metadata']['name']}-{pod_hash}"
        body = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": name, "namespace": deploy["metadata"]["namespace"],
                             "labels": template["metadata"]["labels"],
                             "annotations": {"deployment.kubernetes.io/revision": str(revision),
                                             "deployment.kubernetes.io/desired-replicas": str(spec.get("replicas", 1)),
                                             "deployment.kubernetes.io/max-replicas": str(spec.get("replicas", 1))},
                             "ownerReferences": [owner_ref(deploy, "Deployment", "apps/v1")]},
                "spec": {"replicas": replicas, "selector": selector, "template": template,
                         "minReadySeconds": spec.get("minReadySeconds", 0)}}
        created = await self._create("apps/v1", "replicasets", deploy["metadata"]["namespace"], body)
        if created is not None:
            await self._patch("apps/v1", "deployments", deploy, {"metadata": {"annotations": {
                "deployment.kubernetes.io/revision": str(revision)}}})
        return created

    async def _scale_rs(self, deploy: Obj, rs: Obj, replicas: int) -> None:
        current = int((rs.get("spec") or {}).get("replicas", 0))
        if current == replicas:
            return
        await self._patch("apps/v1", "replicasets", rs, {"spec": {"replicas": replicas}, "metadata": {
            "annotations": {"deployment.kubernetes.io/desired-replicas": str(deploy["spec"].get("replicas", 1))}}})
        verb = "up" if replicas > current else "down"
        self.event(deploy, "ScalingReplicaSet", f"Scaled {verb} replica set {rs['metadata']['name']} from "
                                                f"{current} to {replicas}", component="deployment-controller")

    async def _rollout_recreate(self, deploy: Obj, new_rs: Obj, old: List[Obj], replicas: int) -> None:
        for rs in old:
            await self._scale_rs(deploy, rs, 0)
        if any(self._rs_pods(rs) for rs in old):
            return  # Recreate: every old pod must be gone before a new one is created
        await self._scale_rs(deploy, new_rs, replicas)

    async def _rollout_rolling(self, deploy: Obj, new_rs: Obj, old: List[Obj], replicas: int) -> None:
        rolling = ((deploy["spec"].get("strategy") or {}).get("rollingUpdate") or {})
        surge = scaled_value(rolling.get("maxSurge", "25%"), replicas, True)
        unavailable = scaled_value(rolling.get("maxUnavailable", "25%"), replicas, False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        if not old:
            await self._scale_rs(deploy, new_rs, replicas)
            return
        total = sum(int((rs.get("spec") or {}).get("replicas", 0)) for rs in [new_rs] + old)
        new_count = int((new_rs.get("spec") or {}).get("replicas", 0))
        if new_count < replicas and total < replicas + surge:
            await self._scale_rs(deploy, new_rs, min(replicas, new_count + replicas + surge - total))
        if new_count > replicas:
            await self._scale_rs(deploy, new_rs, replicas)
        ready_total = sum(sum(1 for p in self._owned("pods", rs) if pod_active(p) and pod_ready(p))
                          for rs in [new_rs] + old)
        allowed = max(0, ready_total - (replicas - unavailable))
        for rs in sorted(old, key=lambda r: r["metadata"].get("creationTimestamp", "")):
            count = int((rs.get("spec") or {}).get("replicas", 0))
            if count == 0:
                continue
            ready = sum(1 for p in self._owned("pods", rs) if pod_active(p) and pod_ready(p))
            unhealthy = max(0, count - ready)
            reduce = min(count, unhealthy + allowed)
            allowed -= max(0, reduce - unhealthy)
            if reduce:
                await self._scale_rs(deploy, rs, count - reduce)

    async def _deployment_status(self, deploy: Obj, new_rs: Optional[Obj], owned: List[Obj]) -> None:
        spec = deploy.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        rs_status = [(rs, rs.get("status") or {}) for rs in owned]
        total = sum(int(s.get("replicas", 0)) for _rs, s in rs_status)
        # as calculateStatus does: unavailable counts against the replicas the ReplicaSets *want*
        wanted = sum(int((rs.get("spec") or {}).get("replicas", 0)) for rs, _s in rs_status)
        ready = sum(int(s.get("readyReplicas", 0)) for _rs, s in rs_status)
        available = sum(int(s.get("availableReplicas", 0)) for _rs, s in rs_status)
        updated = int((new_rs.get("status") or {}).get("replicas", 0)) if new_rs else 0
        rolling = ((spec.get("strategy") or {}).get("rollingUpdate") or {})
        max_unavailable = scaled_value(rolling.get("maxUnavailable", "25%"), replicas, False) \
            if (spec.get("strategy") or {}).get("type") != "Recreate" else 0
        previous = (deploy.get("status") or {}).get("conditions") or []
        available_ok = available >= replicas - max_unavailable
        conditions = [condition("Available", available_ok,
                                "MinimumReplicasAvailable" if available_ok else "MinimumReplicasUnavailable",
                                "Deployment has minimum availability." if available_ok else
                                "Deployment does not have minimum availability.", previous)]
        rs_name = new_rs["metadata"]["name"] if new_rs else ""
        complete = new_rs is not None and updated == replicas and available == replicas and total == replicas
        if complete:
            conditions.append(condition("Progressing", True, "NewReplicaSetAvailable",
                                        f'ReplicaSet "{rs_name}" has successfully progressed.', previous))
        else:
            conditions.append(condition("Progressing", True, "ReplicaSetUpdated",
                                        f'ReplicaSet "{rs_name}" is progressing.', previous))
        failure = next((c for c in ((new_rs or {}).get("status") or {}).get("conditions") or []
                        if c.get("type") == "ReplicaFailure" and c.get("status") == "True"), None)
        if failure:
            conditions.append(condition("ReplicaFailure", True, "FailedCreate", failure.get("message", ""), previous))
        for cond in conditions:
            old = next((c for c in previous if c.get("type") == cond["type"]), None)
            same = old is not None and all(old.get(k) == cond.get(k) for k in ("status", "reason", "message"))
            cond["lastUpdateTime"] = old.get("lastUpdateTime", now_iso()) if same else now_iso()
        status = compact({"observedGeneration": deploy["metadata"].get("generation", 1), "replicas": total,
                          "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": available,
                          "unavailableReplicas": max(0, wanted - available), "conditions": conditions},
                         ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
                          "unavailableReplicas"))
        if status != (deploy.get("status") or {}):
            await self._put_status("apps/v1", "deployments", deploy, status)

    async def _put_status(self, api_version: str, plural: str, obj: Obj, status: Obj,
                          manager: str = CONTROLLER) -> Optional[Obj]:
        namespace, name = key_of(obj)
        body = dict(obj)
        body["status"] = status
        body["metadata"] = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
        return await self._request("PUT", self._path(api_version, plural, namespace or None, name, "status"), body,
                                   params={"fieldManager": manager})

    # ------------------------------------------------------------------ replicasets
    async def _sync_replicaset(self, rs: Obj) -> None:
        if terminating(rs):
            return
        spec = rs.get("spec") or {}
        wanted = int(spec.get("replicas", 1))
        pods = [p for p in self._owned("pods", rs) if pod_active(p)]
        if len(pods) < wanted:
            for _missing in range(wanted - len(pods)):
                pod = await self._create_pod(rs, "ReplicaSet", spec.get("template") or {},
                                             generate_name=rs["metadata"]["name"] + "-")
                if pod:
                    self.event(rs, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}",
                               component="replicaset-controller")
        elif len(pods) > wanted:
            def rank(p: Obj) -> Tuple[int, int, str]:
                return (1 if (p.get("spec") or {}).get("nodeName") else 0, 1 if pod_ready(p) else 0,
                        "~" + str(p["metadata"].get("creationTimestamp", "")))
            for pod in sorted(pods, key=rank)[: len(pods) - wanted]:
                await self._delete("v1", "pods", pod)
                self.event(rs, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}",
                           component="replicaset-controller")
        pods = [p for p in self._owned("pods", rs) if pod_active(p)]
        ready = sum(1 for p in pods if pod_ready(p))
        labels = (spec.get("template") or {}).get("metadata", {}).get("labels") or {}
        fully = sum(1 for p in pods if all((p["metadata"].get("labels") or {}).get(k) == v
                                           for k, v in labels.items()))
        status = compact({"replicas": len(pods), "fullyLabeledReplicas": fully, "readyReplicas": ready,
                          "availableReplicas": ready, "observedGeneration": rs["metadata"].get("generation", 1)},
                         ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"))
        failure = self._create_failures.get(rs["metadata"]["uid"])
        if failure and len(pods) < wanted:
            status["conditions"] = [condition("ReplicaFailure", True, "FailedCreate", failure,
                                              (rs.get("status") or {}).get("conditions"))]
        elif len(pods) >= wanted:
            self._create_failures.pop(rs["metadata"]["uid"], None)
        if status != (rs.get("status") or {}):
            await self._put_status("apps/v1", "replicasets", rs, status)

    async def _create_pod(self, owner: Obj, kind: str, template: Obj, generate_name: Optional[str] = None,
                          name: Optional[str] = None, extra_labels: Optional[Dict[str, str]] = None,
                          spec_overrides: Optional[Obj] = None) -> Optional[Obj]:
        template = json.loads(json.dumps(template))
        tmeta = template.get("metadata") or {}
        pod_meta: Obj = {"namespace": owner["metadata"]["namespace"],
                         "labels": {**(tmeta.get("labels") or {}), **(extra_labels or {})},
                         "ownerReferences": [owner_ref(owner, kind, "apps/v1")]}
        if tmeta.get("annotations"):
            pod_meta["annotations"] = tmeta["annotations"]
        if name:
            pod_meta["name"] = name
        else:
            pod_meta["generateName"] = generate_name
        spec = template.get("spec") or {}
        spec.update(spec_overrides or {})
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}
        namespace = owner["metadata"]["namespace"]
        try:
            return await self._request("POST", self._path("v1", "pods", namespace), body,
                                       params={"fieldManager": CONTROLLER}, tolerate=(403, 422))
        except RequestFailed as failed:
            # like the real controllers: a Warning event and a ReplicaFailure condition, retried later
            message = f"Error creating: {failed.body.get('message', failed)}"
            uid = owner["metadata"]["uid"]
            if self._create_failures.get(uid) != message:
                self._create_failures[uid] = message
                self.event(owner, "FailedCreate", message, "Warning",
                           component=f"{kind.lower()}-controller")
            self._retry_later()
            return None

    # ------------------------------------------------------------------ statefulsets
    async def _sync_statefulset(self, sts: Obj) -> None:
        if terminating(sts):
            return
        spec = sts.get("spec") or {}
        name = sts["metadata"]["name"]
        namespace = sts["metadata"]["namespace"]
        wanted = int(spec.get("replicas", 1))
        revision = f"{name}-{template_hash(spec.get('template') or {})}"
        ordered = spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        pods = {p["metadata"]["name"]: p for p in self._owned("pods", sts)}
        for ordinal in range(wanted):
            pod_name = f"{name}-{ordinal}"
            pod = pods.get(pod_name)
            if pod is None:
                await self._ensure_claims(sts, ordinal)
                labels = {"controller-revision-hash": revision, "statefulset.kubernetes.io/pod-name": pod_name,
                          "apps.kubernetes.io/pod-index": str(ordinal)}
                created = await self._create_pod(sts, "StatefulSet", spec.get("template") or {}, name=pod_name,
                                                 extra_labels=labels,
                                                 spec_overrides=self._claim_volumes(sts, ordinal, pod_name))
                if created:
                    self.event(sts, "SuccessfulCreate", f"create Pod {pod_name} in StatefulSet {name} successful",
                               component="statefulset-controller")
                if ordered:
                    break
                continue
            if ordered and (not pod_ready(pod) or terminating(pod)):
                break
        for pod_name, pod in sorted(pods.items(), key=lambda kv: -int(kv[0].rsplit("-", 1)[-1])):
            ordinal = int(pod_name.rsplit("-", 1)[-1])
            if ordinal >= wanted and not terminating(pod):
                await self._delete("v1", "pods", pod)
                self.event(sts, "SuccessfulDelete", f"delete Pod {pod_name} in StatefulSet {name} successful",
                           component="statefulset-controller")
                if ordered:
                    break
        current = [p for p in self._owned("pods", sts) if int(p["metadata"]["name"].rsplit("-", 1)[-1]) < wanted]
        strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
        if strategy == "RollingUpdate" and current and all(pod_ready(p) and not terminating(p) for p in current):
            stale = [p for p in current if (p["metadata"].get("labels") or {}).get("controller-revision-hash")
                     != revision]
            if stale:
                victim = max(stale, key=lambda p: int(p["metadata"]["name"].rsplit("-", 1)[-1]))
                await self._delete("v1", "pods", victim)
        pods_now = [p for p in self._owned("pods", sts) if not terminating(p)]
        updated = sum(1 for p in pods_now
                      if (p["metadata"].get("labels") or {}).get("controller-revision-hash") == revision)
        ready = sum(1 for p in pods_now if pod_ready(p))
        previous = sts.get("status") or {}
        current_revision = revision if updated == len(pods_now) else previous.get("currentRevision", revision)
        status = compact({"observedGeneration": sts["metadata"].get("generation", 1), "replicas": len(pods_now),
                          "readyReplicas": ready, "currentReplicas": updated if current_revision == revision else
                          len(pods_now) - updated, "updatedReplicas": updated, "currentRevision": current_revision,
                          "updateRevision": revision, "collisionCount": 0, "availableReplicas": ready},
                         ("readyReplicas", "currentReplicas", "updatedReplicas"))
        if status != previous:
            await self._put_status("apps/v1", "statefulsets", sts, status)

    def _claim_volumes(self, sts: Obj, ordinal: int, pod_name: str) -> Obj:
        templates = (sts.get("spec") or {}).get("volumeClaimTemplates") or []
        if not templates:
            return {}
        volumes = list(((sts["spec"].get("template") or {}).get("spec") or {}).get("volumes") or [])
        for claim in templates:
            claim_name = claim["metadata"]["name"]
            volumes.append({"name": claim_name, "persistentVolumeClaim": {
                "claimName": f"{claim_name}-{sts['metadata']['name']}-{ordinal}"}})
        return {"volumes": volumes, "hostname": pod_name,
                **({"subdomain": sts["spec"]["serviceName"]} if sts["spec"].get("serviceName") else {})}

    async def _ensure_claims(self, sts: Obj, ordinal: int) -> None:
        namespace = sts["metadata"]["namespace"]
        for claim in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
            body = json.loads(json.dumps(claim))
            body.update({"apiVersion": "v1", "kind": "PersistentVolumeClaim"})
            body["metadata"] = {"name": f"{claim['metadata']['name']}-{sts['metadata']['name']}-{ordinal}",
                                "namespace": namespace,
                                "labels": dict(((sts["spec"].get("selector") or {}).get("matchLabels") or {}))}
            created = await self._create("v1", "persistentvolumeclaims", namespace, body)
            if created is not None:  # the local-path provisioner binds it
                claim_spec = body.get("spec") or {}
                created["status"] = {"phase": "Bound", "accessModes": claim_spec.get("accessModes", []),
                                     "capacity": (claim_spec.get("resources") or {}).get("requests", {})}
                await self._request("PUT", self._path("v1", "persistentvolumeclaims", namespace,
                                                      body["metadata"]["name"], "status"), created)

    # ------------------------------------------------------------------ daemonsets
    async def _sync_daemonset(self, ds: Obj) -> None:
        if terminating(ds):
            return
        spec = ds.get("spec") or {}
        template = spec.get("template") or {}
        revision = template_hash(template)
        generation = ds["metadata"].get("generation", 1)
        pods = [p for p in self._owned("pods", ds) if pod_phase(p) not in ("Succeeded", "Failed")]
        by_node: Dict[str, List[Obj]] = {}
        for pod in pods:
            by_node.setdefault(self._ds_node(pod), []).append(pod)
        eligible = [n for n in self.cache["nodes"].values()
                    if node_selected({"spec": template.get("spec") or {}}, n)
                    and untolerated_taint({"spec": template.get("spec") or {}}, n) is None]
        rolling = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
        max_unavailable = scaled_value(((spec.get("updateStrategy") or {}).get("rollingUpdate") or {})
                                       .get("maxUnavailable", 1), max(len(eligible), 1), True) or 1
        unavailable = sum(1 for n in eligible if not any(pod_ready(p) and not terminating(p)
                                                         for p in by_node.get(n["metadata"]["name"], [])))
        for node in eligible:
            node_name = node["metadata"]["name"]
            mine = [p for p in by_node.get(node_name, []) if not terminating(p)]
            if not mine and not by_node.get(node_name):
                affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}}}
                created = await self._create_pod(ds, "DaemonSet", template,
                                                 generate_name=ds["metadata"]["name"] + "-",
                                                 extra_labels={"controller-revision-hash": revision,
                                                               "pod-template-generation": str(generation)},
                                                 spec_overrides={"affinity": affinity})
                if created:
                    self.event(ds, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}",
                               component="daemonset-controller")
            elif rolling:
                for pod in mine:
                    stale = (pod["metadata"].get("labels") or {}).get("controller-revision-hash") != revision
                    if stale and (unavailable < max_unavailable or not pod_ready(pod)):
                        await self._delete("v1", "pods", pod)
                        unavailable += 1 if pod_ready(pod) else 0
        eligible_names = {n["metadata"]["name"] for n in eligible}
        for node_name, node_pods in by_node.items():
            if node_name not in eligible_names:
                for pod in node_pods:
                    if not terminating(pod):
                        await self._delete("v1", "pods", pod)
        pods = [p for p in self._owned("pods", ds) if not terminating(p) and pod_phase(p) not in
                ("Succeeded", "Failed")]
        scheduled_nodes = {self._ds_node(p) for p in pods}
        desired = len(eligible)
        ready = sum(1 for p in pods if pod_ready(p))
        updated = sum(1 for p in pods if (p["metadata"].get("labels") or {}).get("controller-revision-hash")
                      == revision)
        status = compact({"currentNumberScheduled": len(scheduled_nodes & eligible_names),
                          "numberMisscheduled": len(scheduled_nodes - eligible_names),
                          "desiredNumberScheduled": desired, "numberReady": ready,
                          "observedGeneration": generation, "updatedNumberScheduled": updated,
                          "numberAvailable": ready, "numberUnavailable": max(0, desired - ready)},
                         ("updatedNumberScheduled", "numberAvailable", "numberUnavailable"))
        if status != (ds.get("status") or {}):
            await self._put_status("apps/v1", "daemonsets", ds, status)

    @staticmethod
    def _ds_node(pod: Obj) -> str:
        if (pod.get("spec") or {}).get("nodeName"):
            return pod["spec"]["nodeName"]
        terms = ((((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {})
                 .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
        for term in terms:
            for expr in term.get("matchFields") or []:
                if expr.get("key") == "metadata.name" and expr.get("values"):
                    return expr["values"][0]
        return ""

    # ------------------------------------------------------------------ scheduler
    def _node_usage(self, node_name: str) -> Dict[str, float]:
        used: Dict[str, float] = {"pods": 0.0}
        for pod in self.cache["pods"].values():
            finished = pod_phase(pod) in ("Succeeded", "Failed")
            node = (pod.get("spec") or {}).get("nodeName") or self._assumed.get(pod["metadata"].get("uid", ""))
            if node == node_name and not finished:
                used["pods"] += 1
                for name, qty in pod_requests(pod).items():
                    used[name] = used.get(name, 0.0) + qty
        return used

    def fit(self, pod: Obj) -> Tuple[Optional[str], str]:
        """(node name, "") where the pod fits, or (None, scheduler message explaining why not)."""
        nodes = sorted(self.cache["nodes"].values(), key=lambda n: n["metadata"]["name"])
        reasons: Dict[str, int] = {}
        requests = pod_requests(pod)
        for node in nodes:
            why = self._misfit(pod, node, requests)
            if why is None:
                return node["metadata"]["name"], ""
            for reason in why:
                reasons[reason] = reasons.get(reason, 0) + 1
        total = len(nodes)
        detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
        message = f"0/{total} nodes are available: {detail}." if detail else f"0/{total} nodes are available."
        victims = f" preemption: 0/{total} nodes are available: {total} No preemption victims found for incoming pod."
        return None, message + victims

    def _misfit(self, pod: Obj, node: Obj, requests: Dict[str, float]) -> Optional[List[str]]:
        if (node.get("spec") or {}).get("unschedulable"):
            return ["node(s) were unschedulable"]
        if not node_ready(node):
            return ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]
        if not node_selected(pod, node):
            return ["node(s) didn't match Pod's node affinity/selector"]
        taint = untolerated_taint(pod, node)
        if taint is not None:
            return [f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"]
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        used = self._node_usage(node["metadata"]["name"])
        short = []
        for name, qty in sorted(requests.items()):
            have = parse_quantity(allocatable.get(name, 0))
            if used.get(name, 0.0) + qty > have + 1e-9:
                short.append(f"Insufficient {name}")
        if used["pods"] + 1 > parse_quantity(allocatable.get("pods", 110)):
            short.append("Too many pods")
        return short or None

    async def _schedule(self) -> None:
        live = {p["metadata"]["uid"] for p in self.cache["pods"].values() if not (p.get("spec") or {}).get("nodeName")}
        for uid in [u for u in self._assumed if u not in live]:
            del self._assumed[uid]  # bound (or gone): the pod's own nodeName counts from now on
        pending = [p for p in self.cache["pods"].values()
                   if not (p.get("spec") or {}).get("nodeName") and not terminating(p)
                   and p["metadata"]["uid"] not in self._assumed
                   and (p.get("spec") or {}).get("schedulerName", "default-scheduler") == "default-scheduler"
                   and pod_phase(p) == "Pending"]
        for pod in sorted(pending, key=lambda p: (p["metadata"].get("creationTimestamp", ""), rv_of(p))):
            node_name, message = self.fit(pod)
            uid = pod["metadata"]["uid"]
            if node_name is None:
                if self._unschedulable_reported.get(uid) != message:
                    self._unschedulable_reported[uid] = message
                    status = dict(pod.get("status") or {})
                    status["conditions"] = [condition("PodScheduled", False, "Unschedulable", message,
                                                      status.get("conditions"), probe_times=True)]
                    await self._patch("v1", "pods", pod, {"status": status}, "status", SCHEDULER)
                    self.event(pod, "FailedScheduling", message, "Warning", component="default-scheduler")
                continue
            self._assumed[uid] = node_name
            if self.delays.schedule:
                self._spawn(self._bind_later(pod, node_name))
                continue
            await self._bind(pod, node_name)

    async def _bind_later(self, pod: Obj, node_name: str) -> None:
        await asyncio.sleep(self.delays.schedule)
        current = self.cache["pods"].get(key_of(pod))
        if current and not (current.get("spec") or {}).get("nodeName"):
            await self._bind(current, node_name)

    async def _bind(self, pod: Obj, node_name: str) -> None:
        namespace, name = key_of(pod)
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": namespace},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}}
        result = await self._request("POST", self._path("v1", "pods", namespace, name, "binding"), binding,
                                     params={"fieldManager": SCHEDULER})
        if result is None:
            return
        self._unschedulable_reported.pop(pod["metadata"]["uid"], None)
        bound = await self._request("GET", self._path("v1", "pods", namespace, name))
        if bound is not None:
            self._apply_event("pods", "MODIFIED", bound)
        self.event(pod, "Scheduled", f"Successfully assigned {namespace}/{name} to {node_name}",
                   component="default-scheduler")

    # ------------------------------------------------------------------ endpoints
    async def _sync_endpoints(self, svc: Obj) -> None:
        spec = svc.get("spec") or {}
        selector = spec.get("selector")
        if not selector or spec.get("type") == "ExternalName":
            return
        namespace, name = key_of(svc)
        ready, not_ready = [], []
        ports_by_pod: Dict[str, List[Obj]] = {}
        pods = sorted((p for k, p in self.cache["pods"].items() if k[0] == namespace
                       and match_label_selector({"matchLabels": selector}, p["metadata"].get("labels"))
                       and not terminating(p) and (p.get("status") or {}).get("podIP")),
                      key=lambda p: p["metadata"]["name"])
        for pod in pods:
            address = {"ip": pod["status"]["podIP"], "nodeName": pod["spec"].get("nodeName", ""),
                       "targetRef": {"kind": "Pod", "namespace": namespace, "name": pod["metadata"]["name"],
                                     "uid": pod["metadata"]["uid"]}}
            (ready if pod_ready(pod) else not_ready).append(address)
            ports = []
            for port in spec.get("ports") or []:
                target = port.get("targetPort", port.get("port"))
                if isinstance(target, str) and not target.isdigit():
                    target = next((p.get("containerPort") for c in pod["spec"].get("containers") or []
                                   for p in c.get("ports") or [] if p.get("name") == target), None)
                if target is None:
                    continue
                entry = {"port": int(target), "protocol": port.get("protocol", "TCP")}
                if port.get("name"):
                    entry["name"] = port["name"]
                ports.append(entry)
            ports_by_pod[pod["metadata"]["name"]] = ports
        subsets = []
        if ready or not_ready:
            first_ports = next(iter(ports_by_pod.values()), [])
            subset: Obj = {"ports": first_ports}
            if ready:
                subset["addresses"] = ready
            if not_ready:
                subset["notReadyAddresses"] = not_ready
            subsets.append(subset)
        desired: Obj = {"apiVersion": "v1", "kind": "Endpoints",
                        "metadata": {"name": name, "namespace": namespace,
                                     "labels": dict(svc["metadata"].get("labels") or {})}}
        if subsets:
            desired["subsets"] = subsets
        current = self.cache["endpoints"].get((namespace, name))
        if current is None:
            await self._create("v1", "endpoints", namespace, desired, "endpoint-controller")
            return
        if current.get("subsets") != desired.get("subsets") or (current["metadata"].get("labels") or {}) != \
                desired["metadata"]["labels"]:
            desired["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            await self._request("PUT", self._path("v1", "endpoints", namespace, name), desired,
                                params={"fieldManager": "endpoint-controller"})

    # ------------------------------------------------------------------ kubelet: nodes
    async def _register_node(self, spec: NodeSpec) -> None:
        index = self.nodes.index(spec)
        gpus = spec.gpus * max(1, spec.time_slicing_replicas)
        capacity = {"cpu": spec.cpu, "memory": spec.memory, "pods": str(spec.pods),
                    "ephemeral-storage": "102400Mi", "hugepages-2Mi": "0"}
        if spec.gpus:
            capacity["nvidia.com/gpu"] = str(gpus)
        labels = {"kubernetes.io/hostname": spec.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                  "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
                  "node.kubernetes.io/instance-type": "k3s"}
        if spec.gpus:
            labels.update({"nvidia.com/gpu.product": spec.gpu_product,
                           "nvidia.com/gpu.memory": str(spec.gpu_memory_mib),
                           "nvidia.com/gpu.count": str(spec.gpus), "nvidia.com/gpu.present": "true",
                           "nvidia.com/gpu.replicas": str(max(1, spec.time_slicing_replicas))})
            if spec.time_slicing_replicas > 1:
                labels["nvidia.com/gpu.sharing-strategy"] = "time-slicing"
        labels.update(spec.labels)
        stamp = now_iso()
        conditions = [
            {"type": t, "status": "False", "reason": r, "message": m, "lastHeartbeatTime": stamp,
             "lastTransitionTime": stamp}
            for t, r, m in (("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                            ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                            ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"))]
        conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                           "message": "kubelet is posting ready status", "lastHeartbeatTime": stamp,
                           "lastTransitionTime": stamp})
        status = {"capacity": capacity, "allocatable": dict(capacity), "conditions": conditions,
                  "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                                {"type": "Hostname", "address": spec.name}],
                  "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
                  "nodeInfo": {"machineID": hashlib.md5(spec.name.encode()).hexdigest(),
                               "systemUUID": hashlib.md5(spec.name.encode()).hexdigest(),
                               "bootID": hashlib.md5(spec.name.encode()).hexdigest(),
                               "kernelVersion": "6.1.0-37-amd64", "osImage": "Debian GNU/Linux 12 (bookworm)",
                               "containerRuntimeVersion": "containerd://2.0.5-k3s1",
                               "kubeletVersion": "v1.32.5+k3s1", "kubeProxyVersion": "v1.32.5+k3s1",
                               "operatingSystem": "linux", "architecture": "amd64"}}
        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": spec.name, "labels": labels,
                             "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                             "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
                "spec": {"podCIDR": f"10.42.{index}.0/24", "podCIDRs": [f"10.42.{index}.0/24"],
                         **({"taints": spec.taints} if spec.taints else {})},
                "status": status}
        created = await self._create("v1", "nodes", None, body, KUBELET)
        if created is None:  # already registered (a restarted simulator): refresh labels and status
            await self._request("PATCH", self._path("v1", "nodes", None, spec.name), {
                "metadata": {"labels": labels}, "spec": body["spec"]}, MERGE, params={"fieldManager": KUBELET})
            await self._request("PATCH", self._path("v1", "nodes", None, spec.name, "status"),
                                {"status": status}, MERGE, params={"fieldManager": KUBELET})
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": spec.name, "namespace": "kube-node-lease"},
                 "spec": {"holderIdentity": spec.name, "leaseDurationSeconds": 40,
                          "renewTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())}}
        await self._create("coordination.k8s.io/v1", "leases", "kube-node-lease", lease, KUBELET)
        self._ip_next[spec.name] = 2

    def _my_node(self, name: Optional[str]) -> bool:
        return any(n.name == name for n in self.nodes)

    # ------------------------------------------------------------------ kubelet: pods
    def _sync_kubelet(self) -> None:
        seen = set()
        for pod in list(self.cache["pods"].values()):
            node = (pod.get("spec") or {}).get("nodeName")
            if not self._my_node(node):
                continue
            uid = pod["metadata"]["uid"]
            seen.add(uid)
            runtime = self._runtimes.get(uid)
            if runtime is None and pod_phase(pod) not in ("Succeeded", "Failed"):
                index = next(i for i, n in enumerate(self.nodes) if n.name == node)
                ip_last = self._ip_next.get(node, 2)
                self._ip_next[node] = ip_last + 1
                runtime = PodRuntime(uid, key_of(pod), node, f"10.42.{index}.{ip_last % 254 + 1}")
                self._runtimes[uid] = runtime
                runtime.task = self._spawn(self._run_pod(runtime))
        for uid, runtime in list(self._runtimes.items()):
            if uid not in seen and runtime.task and not runtime.task.done():
                runtime.task.cancel()  # the pod object is gone: kill everything now

    def _pod(self, runtime: PodRuntime) -> Optional[Obj]:
        pod = self.cache["pods"].get(runtime.key)
        if pod is None or pod["metadata"].get("uid") != runtime.uid:
            return None
        return pod

    async def _pod_status(self, runtime: PodRuntime, status: Obj) -> Optional[Obj]:
        pod = self._pod(runtime)
        if pod is None:
            return None
        result = await self._patch("v1", "pods", pod, {"status": status}, "status", KUBELET)
        return result

    def _container_status(self, pod: Obj, container: Obj, runtime: PodRuntime, state: Obj, ready: bool) -> Obj:
        name = container["name"]
        info = runtime.containers.get(name) or Container(name)
        image = container.get("image", "")
        out = {"name": name, "image": image if ":" in image.rsplit("/", 1)[-1] else image + ":latest",
               "imageID": "", "ready": ready, "restartCount": info.restarts, "started": "running" in state,
               "state": state}
        if "running" in state or "terminated" in state:
            out["imageID"] = f"docker.io/{out['image'].split(':')[0]}@sha256:" + hashlib.sha256(
                image.encode()).hexdigest()
            out["containerID"] = "containerd://" + hashlib.sha256(
                f"{runtime.uid}/{name}/{info.restarts}".encode()).hexdigest()
        out["lastState"] = {"terminated": info.last_terminated} if info.last_terminated else {}
        return out

    def _status(self, pod: Obj, runtime: PodRuntime, states: Dict[str, Obj], ready: Dict[str, bool],
                phase: str) -> Obj:
        containers = (pod.get("spec") or {}).get("containers") or []
        previous = (pod.get("status") or {}).get("conditions") or []
        all_ready = bool(containers) and all(ready.get(c["name"]) for c in containers)
        not_ready = sorted(c["name"] for c in containers if not ready.get(c["name"]))
        reason = "" if all_ready else "ContainersNotReady"
        message = "" if all_ready else f"containers with unready status: [{' '.join(not_ready)}]"
        return {
            "phase": phase,
            "conditions": [
                condition("PodReadyToStartContainers", phase != "Pending" or bool(states), previous=previous,
                          probe_times=True),
                condition("Initialized", True, previous=previous, probe_times=True),
                condition("Ready", all_ready, reason, message, previous, probe_times=True),
                condition("ContainersReady", all_ready, reason, message, previous, probe_times=True),
                condition("PodScheduled", True, previous=previous, probe_times=True),
            ],
            "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": runtime.ip, "podIPs": [{"ip": runtime.ip}],
            "startTime": (pod.get("status") or {}).get("startTime") or now_iso(),
            "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort"),
            "containerStatuses": [self._container_status(pod, c, runtime, states.get(c["name"], {
                "waiting": {"reason": "ContainerCreating"}}), bool(ready.get(c["name"]))) for c in containers],
        }

    async def _run_pod(self, runtime: PodRuntime) -> None:
        """One pod's life on this node: create, pull, start, probe, restart, terminate."""
        try:
            await self._pod_lifecycle(runtime)
        except asyncio.CancelledError:
            await self._stop_backends(runtime)
            self._runtimes.pop(runtime.uid, None)
            raise
        except Exception as err:
            self.errors.append(f"pod {runtime.key}: {err!r}")
            await self._stop_backends(runtime)
        finally:
            if self._pod(runtime) is None:
                self._runtimes.pop(runtime.uid, None)

    async def _pod_lifecycle(self, runtime: PodRuntime) -> None:
        pod = self._pod(runtime)
        if pod is None:
            return
        containers = (pod.get("spec") or {}).get("containers") or []
        node = runtime.node
        states: Dict[str, Obj] = {}
        ready: Dict[str, bool] = {}
        await self._pod_status(runtime, self._status(pod, runtime, states, ready, "Pending"))
        for container in containers:
            path = f"spec.containers{{{container['name']}}}"
            self.event(pod, "Pulling", f'Pulling image "{container.get("image")}"', host=node, field_path=path)
        if await self._wait_or_terminated(runtime, self.delays.pull):
            return await self._terminate(runtime, states)
        for container in containers:
            path = f"spec.containers{{{container['name']}}}"
            self.event(pod, "Pulled", f'Successfully pulled image "{container.get("image")}" in '
                                      f'{self.delays.pull:.3f}s ({self.delays.pull:.3f}s including waiting). '
                                      "Image size: 1048576 bytes.", host=node, field_path=path)
            self.event(pod, "Created", f"Created container: {container['name']}", host=node, field_path=path)
        if await self._wait_or_terminated(runtime, self.delays.start):
            return await self._terminate(runtime, states)
        for n, container in enumerate(containers):
            await self._start_container(runtime, pod, container, main=(n == 0))
            states[container["name"]] = {"running": {"startedAt": runtime.containers[container["name"]].started_at}}
            # without probes a running container is ready at once (one status update, like the kubelet)
            ready[container["name"]] = not self.delays.ready and not any(
                container.get(p) for p in ("readinessProbe", "startupProbe"))
        pod = self._pod(runtime) or pod
        await self._pod_status(runtime, self._status(pod, runtime, states, ready, "Running"))
        await self._supervise(runtime, states, ready)

    async def _start_container(self, runtime: PodRuntime, pod: Obj, container: Obj, main: bool) -> None:
        name = container["name"]
        info = runtime.containers.setdefault(name, Container(name))
        info.started_at = now_iso()
        info.backend, info.url = None, None
        if main and self.vllm_factory is not None:
            backend = await self._run_in_thread(self.vllm_factory, pod)
            if backend is not None:
                url = await self._run_in_thread(backend.start)
                info.backend, info.url = backend, str(url).rstrip("/")
                await self._register_ports(runtime, container, info.url)
        self.event(pod, "Started", f"Started container {name}", host=runtime.node,
                   field_path=f"spec.containers{{{name}}}")

    async def _register_ports(self, runtime: PodRuntime, container: Obj, url: str) -> None:
        ports = {int(p["containerPort"]) for p in container.get("ports") or [] if p.get("containerPort")}
        for probe_name in ("readinessProbe", "startupProbe", "livenessProbe"):
            port = ((container.get(probe_name) or {}).get("httpGet") or {}).get("port")
            if isinstance(port, int):
                ports.add(port)
        for port in sorted(ports):
            await self._request("PUT", f"/fake/v1/podnetwork/{runtime.ip}/{port}", {"url": url})
            runtime.ports.append((runtime.ip, port))

    async def _stop_backends(self, runtime: PodRuntime) -> None:
        for info in runtime.containers.values():
            if info.backend is not None:
                backend, info.backend = info.backend, None
                self._collect_logs(info, backend)
                try:
                    await self._run_in_thread(backend.stop)
                except Exception as err:  # a backend failing to stop must not wedge the kubelet
                    self.errors.append(f"stop backend {runtime.key}: {err!r}")
        for ip, port in runtime.ports:
            try:
                if self._session is not None and not self._session.closed:
                    await self._request("DELETE", f"/fake/v1/podnetwork/{ip}/{port}")
            except (RuntimeError, aiohttp.ClientError):
                pass
        runtime.ports.clear()

    @staticmethod
    def _collect_logs(info: Container, backend: Any) -> None:
        logs = getattr(backend, "logs", None)
        if callable(logs):
            try:
                lines = logs()
            except Exception:
                return
            info.logs = list(lines.splitlines() if isinstance(lines, str) else lines)

    async def _wait_or_terminated(self, runtime: PodRuntime, seconds: float) -> bool:
        """Sleep up to `seconds` (0: just yield); True when the pod started terminating meanwhile."""
        deadline = time.monotonic() + seconds
        while True:
            pod = self._pod(runtime)
            if pod is None or terminating(pod):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(remaining, self.probe_interval))

    @staticmethod
    def _exit_code(backend: Any) -> Optional[int]:
        poll = getattr(backend, "poll", None)
        if callable(poll):
            return poll()
        code = getattr(backend, "exit_code", None)
        return code if isinstance(code, int) else None

    async def _probe(self, url: Optional[str], probe: Optional[Obj]) -> Optional[bool]:
        """Result of an httpGet probe against the backend; None when there is nothing to probe."""
        if not probe or url is None or "httpGet" not in probe or self._session is None:
            return None
        path = probe["httpGet"].get("path", "/")
        try:
            async with self._session.get(url + path, timeout=aiohttp.ClientTimeout(
                    total=max(1.0, float(probe.get("timeoutSeconds", 1))))) as resp:
                await resp.read()
                return 200 <= resp.status < 400
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return False

    async def _supervise(self, runtime: PodRuntime, states: Dict[str, Obj], ready: Dict[str, bool]) -> None:
        """Probe readiness/liveness, restart crashed containers, until the pod terminates."""
        ready_since: Dict[str, float] = {}
        started: Dict[str, bool] = {}
        liveness_failures: Dict[str, int] = {}
        last_probe: Dict[str, float] = {}
        while True:
            pod = self._pod(runtime)
            if pod is None or terminating(pod):
                return await self._terminate(runtime, states)
            changed = False
            for container in (pod.get("spec") or {}).get("containers") or []:
                name = container["name"]
                info = runtime.containers[name]
                if "running" not in states.get(name, {}):
                    continue
                code = self._exit_code(info.backend) if info.backend is not None else None
                settled = ready.get(name) and time.monotonic() - last_probe.get(name, 0.0) < self._steady(container)
                if code is None and settled:
                    continue  # ready and probed recently: only a crash is checked this round
                last_probe[name] = time.monotonic()
                if code is None and info.backend is not None and container.get("livenessProbe") and \
                        started.get(name):
                    alive = await self._probe(info.url, container.get("livenessProbe"))
                    liveness_failures[name] = 0 if alive else liveness_failures.get(name, 0) + 1
                    if liveness_failures[name] >= int(container["livenessProbe"].get("failureThreshold", 3)):
                        code = 137
                        self.event(pod, "Unhealthy", "Liveness probe failed: connection refused", "Warning",
                                   host=runtime.node, field_path=f"spec.containers{{{name}}}")
                if code is not None:
                    await self._crash(runtime, pod, container, states, ready, code)
                    liveness_failures[name] = 0
                    started[name] = False
                    ready_since.pop(name, None)
                    changed = True
                    continue
                if not started.get(name):
                    startup = await self._probe(info.url, container.get("startupProbe"))
                    started[name] = startup is not False
                    if not started[name]:
                        continue
                if not ready.get(name):
                    probe = await self._probe(info.url, container.get("readinessProbe"))
                    if probe is not False:
                        ready_since.setdefault(name, time.monotonic())
                        if time.monotonic() - ready_since[name] >= self.delays.ready:
                            ready[name] = True
                            changed = True
                elif container.get("readinessProbe") and info.backend is not None:
                    if await self._probe(info.url, container.get("readinessProbe")) is False:
                        ready[name] = False
                        ready_since.pop(name, None)
                        changed = True
            if changed:
                pod = self._pod(runtime)
                if pod is None:
                    continue
                phase = "Failed" if any("terminated" in s for s in states.values()) else "Running"
                await self._pod_status(runtime, self._status(pod, runtime, states, ready, phase))
                if phase == "Failed":
                    return
                continue
            await asyncio.sleep(self.probe_interval)

    def _steady(self, container: Obj) -> float:
        """Seconds between probes of a ready container: periodSeconds, capped by steady_probe_interval."""
        periods = [float((container.get(p) or {}).get("periodSeconds", 10))
                   for p in ("readinessProbe", "livenessProbe") if container.get(p)]
        return min([self.steady_probe_interval] + periods)

    async def _crash(self, runtime: PodRuntime, pod: Obj, container: Obj, states: Dict[str, Obj],
                     ready: Dict[str, bool], code: int) -> None:
        name = container["name"]
        info = runtime.containers[name]
        backend, info.backend = info.backend, None
        if backend is not None:
            self._collect_logs(info, backend)
            try:
                await self._run_in_thread(backend.stop)
            except Exception:
                pass
        info.previous_logs, info.logs = info.logs, []
        finished = now_iso()
        terminated = {"exitCode": code, "reason": "Error",
                      "startedAt": info.started_at, "finishedAt": finished,
                      "containerID": "containerd://" + hashlib.sha256(
                          f"{runtime.uid}/{name}/{info.restarts}".encode()).hexdigest()}
        ready[name] = False
        policy = (pod.get("spec") or {}).get("restartPolicy", "Always")
        if policy == "Never":
            states[name] = {"terminated": terminated}
            return
        info.last_terminated = terminated
        info.restarts += 1
        backoff = self.delays.crash_backoff * min(2 ** (info.restarts - 1), 8)
        states[name] = {"waiting": {"reason": "CrashLoopBackOff", "message": (
            f"back-off {max(backoff, 10.0):.0f}s restarting failed container={name} "
            f"pod={pod['metadata']['name']}_{pod['metadata']['namespace']}({runtime.uid})")}}
        await self._pod_status(runtime, self._status(pod, runtime, states, ready, "Running"))
        self.event(pod, "BackOff", f"Back-off restarting failed container {name} in pod "
                                   f"{pod['metadata']['name']}_{pod['metadata']['namespace']}({runtime.uid})",
                   "Warning", host=runtime.node, field_path=f"spec.containers{{{name}}}")
        if await self._wait_or_terminated(runtime, backoff):
            return
        current = self._pod(runtime) or pod
        first = ((current.get("spec") or {}).get("containers") or [container])[0]
        await self._start_container(runtime, current, container, main=(first.get("name") == name))
        states[name] = {"running": {"startedAt": info.started_at}}

    async def _terminate(self, runtime: PodRuntime, states: Dict[str, Obj]) -> None:
        pod = self._pod(runtime)
        if pod is None:
            await self._stop_backends(runtime)
            return
        for container in (pod.get("spec") or {}).get("containers") or []:
            self.event(pod, "Killing", f"Stopping container {container['name']}", host=runtime.node,
                       field_path=f"spec.containers{{{container['name']}}}")
        await self._stop_backends(runtime)
        grace = min(self.delays.terminate_grace, float(pod["metadata"].get("deletionGracePeriodSeconds", 30)))
        if grace > 0:
            await asyncio.sleep(grace)
        pod = self._pod(runtime)
        if pod is None:
            return
        finished = now_iso()
        ready = {name: False for name in states}
        for name in list(states):
            started = (states[name].get("running") or {}).get("startedAt", finished)
            states[name] = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started,
                                           "finishedAt": finished}}
        if states:
            await self._pod_status(runtime, self._status(pod, runtime, states, ready,
                                                         (pod.get("status") or {}).get("phase", "Running")))
        await self._delete("v1", "pods", pod, grace=0)

    # ------------------------------------------------------------------ kubelet HTTP endpoint (logs)
    async def _start_kubelet_server(self) -> None:
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._serve_logs)
        app.router.add_get("/healthz", self._serve_healthz)
        self._kubelet_runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await self._kubelet_runner.setup()
        site = web.TCPSite(self._kubelet_runner, "127.0.0.1", 0)
        await site.start()
        self.kubelet_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    @staticmethod
    async def _serve_healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    def _find_container(self, namespace: str, pod_name: str, container: str) -> Optional[Container]:
        for runtime in self._runtimes.values():
            if runtime.key == (namespace, pod_name):
                return runtime.containers.get(container)
        return None

    def _current_logs(self, info: Container, previous: bool) -> List[str]:
        if previous:
            return list(info.previous_logs)
        if info.backend is not None:
            self._collect_logs(info, info.backend)
        return list(info.logs)

    async def _serve_logs(self, request: web.Request) -> web.StreamResponse:
        namespace, pod_name, name = (request.match_info[k] for k in ("namespace", "pod", "container"))
        info = self._find_container(namespace, pod_name, name)
        if info is None:
            return web.Response(status=404, text=f'container "{name}" in pod "{pod_name}" not found')
        previous = request.query.get("previous") in ("true", "1")
        if previous and info.last_terminated is None:
            return web.Response(status=400, text=f'previous terminated container "{name}" in pod "{pod_name}" '
                                                 "not found")
        lines = self._current_logs(info, previous)
        tail = request.query.get("tailLines")
        if tail is not None and int(tail) >= 0:
            lines = lines[len(lines) - int(tail):] if int(tail) else []
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        payload = "".join(line + "\n" for line in lines)
        limit = request.query.get("limitBytes")
        await response.write((payload[: int(limit)] if limit else payload).encode())
        sent = len(self._current_logs(info, previous))
        try:
            if request.query.get("follow") in ("true", "1") and not previous:
                while not self._stopping and self._find_container(namespace, pod_name, name) is info:
                    await asyncio.sleep(self.probe_interval)
                    current = self._current_logs(info, False)
                    if len(current) > sent:
                        await response.write("".join(line + "\n" for line in current[sent:]).encode())
                        sent = len(current)
            await response.write_eof()
        except ConnectionResetError:
            pass  # the reader went away (kubectl logs -f interrupted)
        return response

    # ------------------------------------------------------------------ in-process helpers
    def append_log(self, namespace: str, pod: str, container: str, *lines: str) -> None:
        """Add log lines to a running container without a backend (thread-safe)."""
        def add() -> None:
            info = self._find_container(namespace, pod, container)
            if info is not None:
                info.logs.extend(lines)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(add)

    def backend_of(self, namespace: str, pod: str, container: Optional[str] = None) -> Any:
        """The backend object serving a pod's (main) container, or None."""
        for runtime in list(self._runtimes.values()):
            if runtime.key == (namespace, pod):
                infos = list(runtime.containers.values())
                for info in infos:
                    if container is None or info.name == container:
                        return info.backend
        return None
