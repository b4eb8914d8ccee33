"""KubeletSimulator: the controllers, scheduler and kubelets of a small k3s GPU cluster, driven by the API
server over HTTP (list + watch) as the real components are, on one event loop in a background thread.

    with FakeKubeAPI() as api, KubeletSimulator(api.url, time_scale=0.05) as sim:
        ...  # apply a Deployment: its pods are scheduled, their programs run, probes gate readiness

Options (all durations simulated, see timing.py):
- `nodes`: NodeSpec list (default one RTX 3060 node); `time_scale` (default $BAREMETAL_GPU_SIM_TIME_SCALE or 1);
- `device_plugin` (default True): install the NVIDIA device plugin objects of node_setup.py, so GPU nodes
  advertise `nvidia.com/gpu` once its pod runs, as after site.yml; False: a bare node without GPUs to offer;
- `images_present` ("*" = every existing image is on the nodes; or a list), `registries` (mirrors, e.g.
  {"docker.io": "http://127.0.0.1:5000"}), `pull_bandwidth` (MB/s);
- `vllm_load_seconds`, `vllm_shutdown_seconds`, `vllm_overrides(ctx) -> dict` for the fake vLLM program;
  `custom_programs` ({argv[0] basename: factory(ctx) -> backend}) for tests;
- `state_dir`: where each node's GPU ledger is exported for the fake NVML: `<state_dir>/nodes/<node>/gpu/`
  (`nvml.txt`, `proc/`); `ssl`: the client SSL context when the API serves HTTPS.
`.errors` lists what went wrong (per object; the rest keeps going)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

from .client import ApiClient
from .container_runtime import ContainerRecord
from .context import Context
from .daemonset_controller import DaemonSetController
from .deployment_controller import DeploymentController
from .endpoints_controller import EndpointsController
from .garbage_collector import GarbageCollector, extra_informers
from .images import ALL_PRESENT
from .informers import Informers
from .kubelet_server import KubeletServer
from .node_agent import NodeAgent, NodeSpec
from .node_setup import configs_for, create_missing, device_plugin_manifests, k3s_server_objects
from .pod_creation import PodCreator
from .replicaset_controller import ReplicaSetController
from .scheduler import Scheduler
from .statefulset_controller import StatefulSetController
from .timing import SimClock, resolve_time_scale
from .volume_binding import VolumeBinding


EXECUTOR_THREADS_PER_NODE = 32  # blocking container operations in flight per simulated node


def _trusted_context(url: str) -> Any:
    """The SSL context trusting the CA of the fake API server at `url` in this process (an https API)."""
    if not url.startswith("https://"):
        return None
    from tests.harness.fake_kube.tls import trusted_context  # pylint: disable=import-outside-toplevel

    return trusted_context(url)


class KubeletSimulator:
    def __init__(self, api_url: str, nodes: Optional[List[NodeSpec]] = None, token: Optional[str] = "fake-kube-token",
                 ssl: Any = None, time_scale: Optional[float] = None, device_plugin: bool = True,
                 images_present: Union[str, List[str]] = ALL_PRESENT, registries: Optional[Dict[str, str]] = None,
                 pull_bandwidth: float = 50.0, vllm_load_seconds: Optional[float] = None,
                 vllm_shutdown_seconds: Optional[float] = None,
                 vllm_overrides: Optional[Callable[[Any], Dict[str, Any]]] = None,
                 custom_programs: Optional[Dict[str, Callable[[Any], Any]]] = None,
                 state_dir: Optional[Union[str, Path]] = None) -> None:
        self.api_url = api_url.rstrip("/")
        self.nodes = nodes if nodes is not None else [NodeSpec()]
        self.token = token
        self.ssl = ssl if ssl is not None else _trusted_context(self.api_url)
        self.time_scale = resolve_time_scale(time_scale)
        self.clock = SimClock(self.time_scale)
        self.device_plugin = device_plugin
        self.images_present = images_present
        self.registries = registries
        self.pull_bandwidth = pull_bandwidth
        self.program_options: Dict[str, Any] = {
            "vllm": {"load_seconds": vllm_load_seconds, "shutdown_seconds": vllm_shutdown_seconds,
                     "overrides": vllm_overrides},
            "custom_programs": dict(custom_programs or {})}
        self.state_dir = Path(state_dir) if state_dir else None
        self.agents: Dict[str, NodeAgent] = {}
        self.ctx: Optional[Context] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._server: Optional[KubeletServer] = None
        self._errors: List[str] = []

    # ------------------------------------------------------------------ public helpers
    @property
    def errors(self) -> List[str]:
        return self.ctx.errors if self.ctx is not None else self._errors

    @property
    def kubelet_port(self) -> int:
        return self._server.port if self._server else 0

    def node_state_dir(self, node: str) -> Optional[Path]:
        return self.state_dir / "nodes" / node if self.state_dir else None

    def ledger(self, node: str) -> Any:
        """The GPU memory ledger of a node (None without GPUs)."""
        return self.agents[node].ledger

    def record_of(self, namespace: str, pod: str, container: Optional[str] = None) -> Optional[ContainerRecord]:
        for agent in list(self.agents.values()):
            for worker in list(agent.workers.values()):
                if worker.key == (namespace, pod) and not worker.gone:
                    for name, record in worker.records.items():
                        if container is None and not record.init or name == container:
                            return record
        return None

    def backend_of(self, namespace: str, pod: str, container: Optional[str] = None) -> Any:
        """The program running a pod's (first app) container now, or None."""
        record = self.record_of(namespace, pod, container)
        if record is None or record.instance is None or record.instance.exited is not None:
            return None
        return record.instance.backend

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "KubeletSimulator":
        ready = threading.Event()
        failure: List[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            # Blocking container work (a program's start, its stop within the grace period, exec probes) runs
            # in threads. Each real node has its own kubelet and container runtime, so these must not queue
            # behind each other across nodes: asyncio's default pool (CPU count + 4 threads, 6 on 2 cores)
            # stopped only 6 model servers at a time in a 20-node cluster. Threads start on demand.
            loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(
                max_workers=EXECUTOR_THREADS_PER_NODE * max(1, len(self.nodes)), thread_name_prefix="kubelet-sim"))
            self._loop = loop
            try:
                loop.run_until_complete(self._startup())
            except BaseException as err:  # pylint: disable=broad-except
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
        ready.wait(30)
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
                future.result(30)
            finally:
                loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        self._thread = None
        self._loop = None

    def __enter__(self) -> "KubeletSimulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    async def _startup(self) -> None:
        client = ApiClient(self.api_url, self.token, self.ssl)
        informers = Informers(client, extra=extra_informers())
        client.on_write = informers.remember
        await client.open()
        self.ctx = ctx = Context(client, informers, self.clock)
        self.ctx.errors.extend(self._errors)
        self._server = KubeletServer(self.record_of, min(0.2, max(0.02, self.clock.real(1.0))), lambda: ctx.stopping)
        await self._server.start()
        for index, spec in enumerate(self.nodes):
            agent = NodeAgent(ctx, spec, index, self._server.port, self.program_options, self.images_present,
                              self.registries, self.pull_bandwidth, self.node_state_dir(spec.name))
            agent.devices.on_change = ctx.informers.dirty.set
            self.agents[spec.name] = agent
        await create_missing(client, k3s_server_objects(), "k3s")
        for agent in self.agents.values():
            await agent.images.preload()
            await agent.register()
        listed = []
        for name in informers.watched:
            first = asyncio.get_running_loop().create_future()
            listed.append(first)
            ctx.spawn(informers.run(name, first))
        await asyncio.wait_for(asyncio.gather(*listed), 15)
        if self.device_plugin and any(n.gpus for n in self.nodes):
            await create_missing(client, device_plugin_manifests(configs_for(self.nodes)), "baremetal-gpu")
        self.volumes = VolumeBinding(ctx)
        creator = PodCreator(ctx)
        self.controllers = {
            "deployments": DeploymentController(ctx), "replicasets": ReplicaSetController(ctx, creator),
            "statefulsets": StatefulSetController(ctx, creator), "daemonsets": DaemonSetController(ctx, creator)}
        self.gc = GarbageCollector(ctx)
        self.scheduler = Scheduler(ctx, self.volumes)
        self.endpoints = EndpointsController(ctx)
        for agent in self.agents.values():
            ctx.spawn(agent.status_loop())
        ctx.spawn(self._reconcile_loop())
        if self.device_plugin:
            await self._gpus_advertised()

    async def _gpus_advertised(self, timeout: float = 60.0) -> None:
        """Wait, as the device plugin role does, until every GPU node's allocatable `nvidia.com/gpu` is its
        GPUs x time-slicing replicas (the plugin's pod ran and the node status showed it)."""
        ctx = self.ctx
        assert ctx is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, self.clock.real(60))
        while True:
            missing = []
            for spec in self.nodes:
                if not spec.gpus:
                    continue
                node = ctx.cache("nodes").get(("", spec.name)) or {}
                allocatable = (node.get("status") or {}).get("allocatable") or {}
                have = sum(int(v) for k, v in allocatable.items() if k.startswith("nvidia.com/gpu"))
                if have < spec.gpus * max(1, spec.time_slicing_replicas):
                    missing.append(f"{spec.name} ({have})")
            if not missing:
                return
            if loop.time() > deadline:
                raise RuntimeError(f"the NVIDIA device plugin did not advertise the GPUs of {', '.join(missing)}: "
                                   f"{ctx.errors[-3:]}")
            await asyncio.sleep(0.02)

    async def _teardown(self) -> None:
        ctx = self.ctx
        if ctx is None:
            return
        ctx.stopping = True
        ctx.informers.stopping = True
        ctx.events.stopped = True
        ctx.informers.dirty.set()
        for agent in self.agents.values():
            await agent.shutdown()
        current = asyncio.current_task()
        pending = [t for t in ctx.background() if t is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.stop()
        await ctx.client.close()

    # ------------------------------------------------------------------ reconcile
    async def _reconcile_loop(self) -> None:
        ctx = self.ctx
        assert ctx is not None
        while not ctx.stopping:
            await ctx.informers.dirty.wait()
            ctx.informers.dirty.clear()
            if ctx.stopping:
                return
            try:
                await self.reconcile_once()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # a bug outside the per-object guards: reported, then wait for the next change
                ctx.errors.append(f"reconcile: {err!r}")

    async def reconcile_once(self) -> None:
        ctx = self.ctx
        assert ctx is not None
        for cache_name, controller in self.controllers.items():
            for obj in list(ctx.cache(cache_name).values()):
                await ctx.guard(cache_name, obj, controller.sync(obj), f"{obj.get('kind', '').lower()}-controller")
        await self.gc.sync()
        for claim in list(ctx.cache("persistentvolumeclaims").values()):
            await ctx.guard("persistentvolumeclaim", claim, self.volumes.sync(claim), "persistentvolume-controller")
        await self.scheduler.sync()
        for agent in self.agents.values():
            agent.sync_pods()
        for svc in list(ctx.cache("services").values()):
            await ctx.guard("endpoints", svc, self.endpoints.sync(svc), "endpoint-controller")
