"""Graceful termination, as the kubelet's killPod does it. A pod with a deletionTimestamp stays Terminating
until every process of it has exited:

- each running container gets a `Killing` event (`Stopping container x`), its preStop hook (exec, httpGet
  or sleep) within the grace period, then SIGTERM, and SIGKILL when the grace period
  (deletionGracePeriodSeconds: terminationGracePeriodSeconds, or the DeleteOptions' gracePeriodSeconds)
  ends; the exit code is the program's (0 when it stops cleanly, 143 when SIGTERM kills it, 137 after
  SIGKILL);
- each process's GPU memory is released by the ledger only after that process has exited;
- then the final status (terminal phase, terminated containers), and only then the kubelet deletes the pod
  object with grace 0. A pod object that vanished (force deletion) gets SIGKILL at once."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from .container_runtime import Instance, terminated_state
from .probes import exec_in_container, resolve_port

MIN_GRACE_AFTER_HOOK = 2.0  # simulated seconds: a preStop hook that used up the grace still leaves this


async def _hook(worker: Any, instance: Instance, hook: dict, grace: float) -> None:
    record = instance.record
    pod_name = worker.pod["metadata"]["name"]
    clock = worker.clock
    if "exec" in hook:
        argv = list(hook["exec"].get("command") or [])
        code, output = await asyncio.get_running_loop().run_in_executor(
            None, exec_in_container, instance.sandbox, argv, clock.timeout(grace))
        if code != 0:
            message = (f"Exec lifecycle hook ({argv}) for Container \"{record.name}\" in Pod \"{pod_name}\" failed - "
                       f"error: command '{' '.join(argv)}' exited with {code}: {output}, message: \"{output}\"")
            worker.event("Warning", "FailedPreStopHook", message, record)
    elif "httpGet" in hook:
        get = hook["httpGet"]
        port = resolve_port(get.get("port"), record.spec)
        host = get.get("host") or worker.ip
        real = worker.net.resolve(host, port, inside=False) if port else None
        path = get.get("path", "/")
        error = ""
        if real is None:
            error = f'Get "http://{host}:{port}{path}": dial tcp {host}:{port}: connect: connection refused'
        else:
            try:
                async with worker.node.ctx.client.session.get(f"http://{real}{path}", timeout=aiohttp.ClientTimeout(
                        total=clock.timeout(grace))) as resp:
                    await resp.read()
                    if resp.status >= 400:
                        error = f"HTTP lifecycle hook ({path}) returned status {resp.status}"
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as err:
                error = f'Get "http://{host}:{port}{path}": {err}'
        if error:
            worker.event("Warning", "FailedPreStopHook", f"HTTP lifecycle hook ({path}) for Container "
                                                         f"\"{record.name}\" in Pod \"{pod_name}\" failed - error: "
                                                         f"{error}, message: \"\"", record)
    elif "sleep" in hook:
        await asyncio.sleep(clock.real(min(float(hook["sleep"].get("seconds", 0)), grace)))


async def _kill(worker: Any, instance: Instance, grace: float) -> None:
    record = instance.record
    clock = worker.clock
    if not worker.gone:
        worker.event("Normal", "Killing", f"Stopping container {record.name}", record)
    remaining = grace
    hook = (record.spec.get("lifecycle") or {}).get("preStop")
    if hook and grace > 0 and not worker.gone:
        started = clock.now()
        await _hook(worker, instance, hook, grace)
        remaining = max(grace - clock.sim(clock.now() - started), MIN_GRACE_AFTER_HOOK)
    code = await worker.runtime.stop(instance, remaining)
    record.ready = False
    record.state = {"terminated": terminated_state(code, instance.started_iso, instance.container_id)}


async def terminate(worker: Any) -> None:
    meta = worker.pod["metadata"]
    spec = worker.pod.get("spec") or {}
    grace = 0.0 if worker.gone else float(meta.get("deletionGracePeriodSeconds",
                                                   spec.get("terminationGracePeriodSeconds", 30)))
    instances = worker.instances()
    await asyncio.gather(*(_kill(worker, instance, grace) for instance in instances))
    worker.node.devices.release(worker.uid)
    if worker.gone:
        return
    ran = [r for r in worker.records.values() if not r.init and "terminated" in r.state]
    if worker.phase not in ("Succeeded", "Failed"):
        worker.phase = "Succeeded" if ran and all(r.state["terminated"]["exitCode"] == 0 for r in ran) else "Failed"
    await worker.write_status()
    await worker.node.ctx.client.delete("v1", "pods", worker.pod, grace=0, uid_precondition=True)
