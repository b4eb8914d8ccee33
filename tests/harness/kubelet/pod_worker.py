"""One pod's life on a node, as the kubelet's pod worker drives it:

1. admission: devices for extended resources (`nvidia.com/gpu`) from the device manager (none left, or
   no plugin: the pod is rejected, phase Failed, `UnexpectedAdmissionError` / `OutOf<resource>`);
2. volumes (volumes.py): a missing Secret/ConfigMap/PVC keeps it ContainerCreating with `FailedMount`;
3. the sandbox: its RuntimeClass's handler must exist on the node (else `FailedCreatePodSandBox`:
   `no runtime for "nvidia" is configured`); creating it takes 0.5 s, then the pod has its IP;
4. init containers, in order, each to completion (a failing one restarts with back-off: Init:Error,
   Init:CrashLoopBackOff; with restartPolicy Never the pod fails);
5. app containers: image (images.py), environment (container_env.py: CreateContainerConfigError), start,
   probes (probes.py), exits noticed within the kubelet's PLEG period (1 s), restarts per restartPolicy
   with the crash-loop back-off (10 s doubling to 300 s, reset after 10 min without a crash);
6. termination (pod_termination.py) once the pod has a deletionTimestamp.
Every wait is in simulated seconds (timing.py)."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Optional

from .container_env import ConfigError, container_env
from .container_runtime import ContainerRecord, Instance, Runtime, terminated_state
from .devices import AdmissionError
from .images import PullError
from .objects import Obj, key_of, now_iso, pod_ref, terminating
from .pod_status import pod_status, qos_class, wants_gpu
from .pod_termination import terminate
from .probes import ProbeWorker
from .programs.sandbox import PodPorts
from .timing import go_duration
from .volumes import PodVolumes

SYNC_RETRY = 10.0  # simulated seconds before a failed pod sync is retried (the pod worker's back-off)
MOUNT_RETRY = 2.0
PULL_RETRY = 1.0  # after ErrImagePull, the next sync (which then reports ImagePullBackOff)
PLEG_PERIOD = 1.0  # how often the kubelet relists containers (a crash is noticed within it)
VOLUME_RESYNC = 60.0  # configMap/secret volumes follow their objects within the kubelet's sync period
SANDBOX_SECONDS = 0.5  # containerd's RunPodSandbox with the pause container and the CNI (flannel) on k3s


class PodWorker:
    def __init__(self, node: Any, pod: Obj) -> None:
        self.node = node
        self.clock = node.clock
        self.pod = pod
        self.uid = pod["metadata"]["uid"]
        self.key = key_of(pod)
        spec = pod.get("spec") or {}
        self.records: Dict[str, ContainerRecord] = {}
        for container in spec.get("initContainers") or []:
            self.records[container["name"]] = ContainerRecord(container, init=True)
        for container in spec.get("containers") or []:
            record = ContainerRecord(container)
            if spec.get("initContainers"):
                record.state = {"waiting": {"reason": "PodInitializing"}}
            self.records[container["name"]] = record
        self.phase = "Pending"
        self.failed_reason = self.failed_message = ""
        self.ip: Optional[str] = None
        self.net = PodPorts("")
        self.sandbox_ready = False
        self.start_time: Optional[str] = None
        self.volumes = PodVolumes(pod, node.ctx.informers.cache, node.host)
        self.runtime = Runtime(self)
        self.devices: Dict[str, List[int]] = {}
        self.device_env: Dict[str, Dict[str, str]] = {}
        self.terminating = False
        self.gone = False
        self.stopping = asyncio.Event()
        self.wake = asyncio.Event()
        self._dirty = asyncio.Event()
        self._written: Optional[Obj] = None
        self.task: Optional[asyncio.Task] = None

    # ------------------------------------------------------------------ signals from the kubelet
    def update(self, pod: Obj) -> None:
        self.pod = pod
        if terminating(pod) and not self.terminating:
            self.terminating = True
            self.stopping.set()
            self.wake.set()

    def vanish(self) -> None:
        """The pod object is gone (force deletion): kill everything now, write nothing."""
        self.gone = True
        self.terminating = True
        self.stopping.set()
        self.wake.set()

    # ------------------------------------------------------------------ helpers
    def dirty(self) -> None:
        self._dirty.set()

    async def pause(self, seconds: float, real: bool = False) -> bool:
        """Wait `seconds` (simulated unless `real`); True if the pod started terminating meanwhile."""
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds if real else self.clock.real(seconds))
        except asyncio.TimeoutError:
            pass
        return self.stopping.is_set()

    def event(self, type_: str, reason: str, message: str, record: Optional[ContainerRecord] = None) -> None:
        field_path = None
        if record is not None:
            field_path = f"spec.{'initContainers' if record.init else 'containers'}{{{record.name}}}"
        self.node.ctx.events(self.pod, reason, message, type_, host=self.node.name, field_path=field_path)

    def backends(self) -> Dict[str, Any]:
        return {name: r.instance.backend for name, r in self.records.items()
                if r.instance is not None and r.instance.exited is None}

    def qos_class(self) -> str:
        return qos_class(self.pod)

    def instances(self) -> List[Instance]:
        return [r.instance for r in self.records.values() if r.instance is not None and r.instance.exited is None]

    # ------------------------------------------------------------------ status
    async def _status_writer(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self.write_status()

    async def write_status(self) -> None:
        if self.gone:
            return
        status = pod_status(self)
        if status == self._written:
            return
        self._written = status
        try:
            await self.node.ctx.client.patch("v1", "pods", self.pod, {"status": status}, "status", "kubelet")
        except Exception as err:  # the next change writes again
            self._written = None
            self.node.ctx.errors.append(f"pod status {self.key}: {err!r}")

    # ------------------------------------------------------------------ the life
    async def run(self) -> None:
        writer = self.node.ctx.spawn(self._status_writer())
        try:
            await self._lifecycle()
        except asyncio.CancelledError:
            self.vanish()
            raise
        except Exception as err:
            self.node.ctx.errors.append(f"pod {self.key}: {err!r}")
        finally:
            try:
                if self.terminating:
                    await asyncio.shield(terminate(self))
                else:
                    await self.write_status()
            finally:
                writer.cancel()

    async def _lifecycle(self) -> None:
        self.start_time = now_iso()
        self.dirty()
        if not self._admit() or not await self._mount() or not await self._sandbox():
            if not self.terminating:
                await self.stopping.wait()
            return
        if not await self._init_containers():
            if not self.terminating:
                await self.stopping.wait()
            return
        for record in self.records.values():
            if not record.init:
                record.state = {"waiting": {"reason": "ContainerCreating"}}
        self.dirty()
        apps = [r for r in self.records.values() if not r.init]
        await asyncio.gather(*(self._app_loop(r) for r in apps))
        if not self.terminating:
            codes = [(r.state.get("terminated") or {}).get("exitCode") for r in apps]
            self.phase = "Succeeded" if all(c == 0 for c in codes) else "Failed"
            self.dirty()
            await self.stopping.wait()

    def _admit(self) -> bool:
        spec = self.pod.get("spec") or {}
        try:
            for container in list(spec.get("containers") or []) + list(spec.get("initContainers") or []):
                for resource, count in wants_gpu(container).items():
                    capacity, _allocatable = self.node.devices.resources()
                    if resource not in capacity:
                        raise AdmissionError(f"OutOf{resource}", f"Pod was rejected: Node didn't have enough "
                                             f"resource: {resource}, requested: {count}, used: 0, capacity: 0")
                    try:
                        devices = self.node.devices.allocate(self.uid, container["name"], resource, count)
                    except AdmissionError:
                        reuse = next((d for d in self.devices.values() if len(d) >= count), None)
                        if container in (spec.get("initContainers") or []) and reuse is not None:
                            self.devices[container["name"]] = reuse[:count]
                            continue
                        raise
                    self.devices[container["name"]] = sorted({index for _id, index in devices})
                    self.device_env[container["name"]] = self.node.visible_devices(self.devices[container["name"]])
        except AdmissionError as err:
            self.node.devices.release(self.uid)
            self.phase, self.failed_reason, self.failed_message = "Failed", err.reason, err.message
            self.event("Warning", err.reason, err.message)
            self.dirty()
            return False
        return True

    async def _refresh_volumes(self) -> None:
        while not await self.pause(VOLUME_RESYNC):
            self.volumes.refresh()

    async def _mount(self) -> bool:
        while True:
            errors = self.volumes.resolve()
            if not errors:
                self.node.ctx.spawn(self._refresh_volumes())
                return True
            for error in errors:
                self.event("Warning", "FailedMount", str(error))
            if await self.pause(MOUNT_RETRY):
                return False

    async def _sandbox(self) -> bool:
        name = (self.pod.get("spec") or {}).get("runtimeClassName")
        while name:
            runtime_class = self.node.ctx.cache("runtimeclasses").get(("", name))
            if runtime_class is None:
                problem = f'runtimeclass.node.k8s.io "{name}" not found'
            elif runtime_class.get("handler") not in self.node.runtime_handlers:
                problem = (f"rpc error: code = Unknown desc = failed to get sandbox runtime: no runtime for "
                           f"\"{runtime_class.get('handler')}\" is configured")
            else:
                break
            self.event("Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {problem}")
            if await self.pause(SYNC_RETRY):
                return False
        if await self.pause(SANDBOX_SECONDS):
            return False
        self.ip = self.node.next_ip()
        self.net.ip = self.ip
        self.sandbox_ready = True
        self.dirty()
        return True

    # ------------------------------------------------------------------ containers
    async def _prepare(self, record: ContainerRecord) -> Optional[Dict[str, str]]:
        """Image and environment of the next run; None when the pod terminates first."""
        spec = record.spec

        def image_event(type_: str, reason: str, message: str) -> None:
            self.event(type_, reason, message, record)

        while True:
            try:
                record.image = await self.node.images.ensure(
                    spec.get("image", ""), spec.get("imagePullPolicy", "IfNotPresent"), self.uid, image_event)
                env = container_env(self.pod, spec, self.node.ctx.informers.cache, record.image.env)
                env.update(self.device_env.get(record.name, {}))
                return env
            except PullError as err:
                record.state = {"waiting": {"reason": err.reason, "message": err.message}}
                self.event("Warning", "Failed", f"Error: {err.reason}", record)
                wait = SYNC_RETRY if err.reason == "ErrImageNeverPull" else PULL_RETRY
                if err.reason == "ImagePullBackOff":
                    key = f"{self.uid}_{spec.get('image', '')}"
                    wait = self.clock.sim(self.node.images.backoff.remaining(
                        key, self.node.images._failed_at.get(key, self.clock.now()))) + 0.001
            except ConfigError as err:
                record.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(err)}}
                self.event("Warning", "Failed", f"Error: {err}", record)
                wait = SYNC_RETRY
            self.dirty()
            if await self.pause(wait):
                return None

    async def _back_off(self, record: ContainerRecord) -> bool:
        """The crash-loop back-off before restarting an exited container; False if the pod terminates."""
        if record.finished_at is None:
            return True
        key = f"{self.uid}/{record.name}"
        backoff = self.node.crash_backoff
        if backoff.in_backoff_since(key, record.finished_at):
            ref = pod_ref(self.pod)
            message = (f"back-off {go_duration(backoff.get(key))} restarting failed container={record.name} "
                       f"pod={ref}")
            record.last_terminated = record.state.get("terminated") or record.last_terminated
            record.state = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
            self.event("Warning", "BackOff", f"Back-off restarting failed container {record.name} in pod {ref}",
                       record)
            self.dirty()
            if await self.pause(backoff.remaining(key, record.finished_at), real=True):
                return False
        backoff.next(key, record.finished_at)
        return True

    async def _run_once(self, record: ContainerRecord, env: Dict[str, str]) -> Optional[int]:
        """Start the container and wait until it exits (or is killed by a probe); None if the pod terminates."""
        if record.finished_at is not None:
            record.last_terminated = record.state.get("terminated") or record.last_terminated
            record.previous_logs = list(record.logs)
            record.restarts += 1
        instance = await self.runtime.start(record, env, self.devices.get(record.name, []))
        reason = getattr(instance.backend, "reason", None)
        if reason == "StartError":
            code = instance.poll() or 128
            await self.runtime.exited(instance, code)
            message = (instance.backend.logs() or [""])[0]
            state = terminated_state(code, instance.started_iso, instance.container_id, "StartError", message)
            record.state = {"terminated": state}
            self.event("Warning", "Failed", f"Error: {message}", record)
            self.dirty()
            return code
        self.event("Normal", "Created", f"Created container: {record.name}", record)
        self.event("Normal", "Started", f"Started container {record.name}", record)
        record.state = {"running": {"startedAt": instance.started_iso}}
        spec = record.spec
        record.started = record.init or not spec.get("startupProbe")
        record.ready = record.started and not spec.get("readinessProbe") and not record.init
        if not record.init:
            if self.phase == "Pending":
                self.phase = "Running"
            self._start_probes(instance)
        self.dirty()
        return await self._wait_exit(instance)

    def _start_probes(self, instance: Instance) -> None:
        workers: Dict[str, ProbeWorker] = {}

        def on_result(kind: str, ok: bool) -> None:
            record = instance.record
            if instance.exited is not None:
                return
            if kind == "startup" and ok:
                record.started = True
                record.ready = not record.spec.get("readinessProbe")
                if "readiness" in workers:
                    workers["readiness"].trigger.set()
            elif kind == "readiness":
                record.ready = ok and record.started
            elif not ok:
                instance.kill_reason = kind
                self.wake.set()
            self.dirty()

        def event(type_: str, reason: str, message: str) -> None:
            self.event(type_, reason, message, instance.record)

        for kind in ("startup", "readiness", "liveness"):
            spec = instance.record.spec.get(f"{kind}Probe")
            if spec:
                workers[kind] = ProbeWorker(kind, spec, instance, self.clock, self.node.ctx.client.session, event,
                                            on_result)
        instance.probes = [self.node.ctx.spawn(w.run()) for w in workers.values()]

    async def _wait_exit(self, instance: Instance) -> Optional[int]:
        record = instance.record
        period = min(1.0, max(0.02, self.clock.real(PLEG_PERIOD)))
        while True:
            code = instance.poll()
            if code is not None:
                await self.runtime.exited(instance, code)
                break
            if instance.kill_reason:
                self.event("Normal", "Killing", f"Container {record.name} failed {instance.kill_reason} probe, will "
                                                "be restarted", record)
                code = await self.runtime.stop(instance, self.grace(instance.record.spec, instance.kill_reason))
                break
            if self.terminating:
                return None
            try:
                await asyncio.wait_for(self.wake.wait(), period)
            except asyncio.TimeoutError:
                pass
            self.wake.clear()
        record.ready = record.started = False
        reason = getattr(instance.backend, "termination_reason", None)
        record.state = {"terminated": terminated_state(code, instance.started_iso, instance.container_id, reason)}
        self.dirty()
        return code

    def grace(self, container: Obj, probe_kind: Optional[str] = None) -> float:
        probe = container.get(f"{probe_kind}Probe") or {} if probe_kind else {}
        if probe.get("terminationGracePeriodSeconds") is not None:
            return float(probe["terminationGracePeriodSeconds"])
        return float((self.pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))

    async def _init_containers(self) -> bool:
        policy = (self.pod.get("spec") or {}).get("restartPolicy", "Always")
        for record in [r for r in self.records.values() if r.init]:
            while not record.done:
                env = await self._prepare(record)
                if env is None or not await self._back_off(record):
                    return False
                code = await self._run_once(record, env)
                if code is None:
                    return False
                if code == 0:
                    record.done = True
                elif policy == "Never":
                    self.phase = "Failed"
                    self.dirty()
                    return False
        return True

    async def _app_loop(self, record: ContainerRecord) -> None:
        policy = (self.pod.get("spec") or {}).get("restartPolicy", "Always")
        while not self.terminating:
            env = await self._prepare(record)
            if env is None or not await self._back_off(record):
                return
            code = await self._run_once(record, env)
            if code is None:
                return
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                record.done = True
                return
