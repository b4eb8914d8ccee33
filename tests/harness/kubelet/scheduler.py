"""kube-scheduler: nodeSelector, required node affinity, taints, unschedulable and not-ready nodes, requests
(cpu, memory, pods, extended resources such as `nvidia.com/gpu` as the device plugin advertises them)
against allocatable minus the pods bound or assumed there, and the volume checks of volume_binding.
An unschedulable pod gets `PodScheduled=False/Unschedulable` and a `FailedScheduling` event with the
scheduler's message, and is retried on every change."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from .client import api_path
from .context import Context
from .objects import (Obj, condition, key_of, node_ready, node_selected, parse_quantity, pod_finished,
                      pod_requests, rv_of, terminating, untolerated_taint)
from .volume_binding import VolumeBinding

SCHEDULER = "default-scheduler"
MANAGER = "kube-scheduler"


class Scheduler:
    def __init__(self, ctx: Context, volumes: VolumeBinding) -> None:
        self.ctx = ctx
        self.volumes = volumes
        self._assumed: Dict[str, str] = {}  # pod uid -> node chosen but not bound yet
        self._reported: Dict[str, str] = {}

    def _usage(self, node_name: str) -> Dict[str, float]:
        used: Dict[str, float] = {"pods": 0.0}
        for pod in self.ctx.cache("pods").values():
            node = (pod.get("spec") or {}).get("nodeName") or self._assumed.get(pod["metadata"].get("uid", ""))
            if node == node_name and not pod_finished(pod):
                used["pods"] += 1
                for name, qty in pod_requests(pod).items():
                    used[name] = used.get(name, 0.0) + qty
        return used

    def fit(self, pod: Obj) -> Tuple[Optional[str], str]:
        """(node name, "") where the pod fits, or (None, the scheduler's message explaining why not)."""
        nodes = sorted(self.ctx.cache("nodes").values(), key=lambda n: n["metadata"]["name"])
        total = len(nodes)
        blocked = self.volumes.prefilter(pod)
        if blocked:
            return None, (f"0/{total} nodes are available: {blocked}. preemption: 0/{total} nodes are available: "
                          f"{total} Preemption is not helpful for scheduling.")
        reasons: Dict[str, int] = {}
        requests = pod_requests(pod)
        helpful = 0
        for node in nodes:
            why = self._misfit(pod, node, requests)
            if why is None:
                return node["metadata"]["name"], ""
            helpful += 1 if all(r.startswith("Insufficient") or r == "Too many pods" for r in why) else 0
            for reason in why:
                reasons[reason] = reasons.get(reason, 0) + 1
        detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
        message = f"0/{total} nodes are available: {detail}." if detail else f"0/{total} nodes are available."
        parts = []
        if helpful:
            parts.append(f"{helpful} No preemption victims found for incoming pod")
        if total - helpful:
            parts.append(f"{total - helpful} Preemption is not helpful for scheduling")
        return None, f"{message} preemption: 0/{total} nodes are available: {', '.join(parts)}."

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
        volume = self.volumes.node_misfit(pod, node)
        if volume:
            return [volume]
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        used = self._usage(node["metadata"]["name"])
        short = []
        for name, qty in sorted(requests.items()):
            if qty and used.get(name, 0.0) + qty > parse_quantity(allocatable.get(name, 0)) + 1e-9:
                short.append(f"Insufficient {name}")
        if used["pods"] + 1 > parse_quantity(allocatable.get("pods", 110)):
            short.append("Too many pods")
        return short or None

    async def sync(self) -> None:
        pods = self.ctx.cache("pods")
        unbound = {p["metadata"]["uid"] for p in pods.values() if not (p.get("spec") or {}).get("nodeName")}
        for uid in [u for u in self._assumed if u not in unbound]:
            del self._assumed[uid]  # bound (or gone): the pod's own nodeName counts from now on
        pending = [p for p in pods.values()
                   if not (p.get("spec") or {}).get("nodeName") and not terminating(p)
                   and p["metadata"]["uid"] not in self._assumed
                   and (p.get("spec") or {}).get("schedulerName", SCHEDULER) == SCHEDULER
                   and (p.get("status") or {}).get("phase", "Pending") == "Pending"]
        for pod in sorted(pending, key=lambda p: (p["metadata"].get("creationTimestamp", ""), rv_of(p))):
            await self.ctx.guard("schedule", pod, self._schedule(pod), SCHEDULER)

    async def _schedule(self, pod: Obj) -> None:
        node_name, message = self.fit(pod)
        uid = pod["metadata"]["uid"]
        if node_name is None:
            if self._reported.get(uid) != message:
                self._reported[uid] = message
                status = dict(pod.get("status") or {})
                status["conditions"] = [condition("PodScheduled", False, "Unschedulable", message,
                                                  status.get("conditions"), probe_times=True)]
                await self.ctx.client.patch("v1", "pods", pod, {"status": status}, "status", MANAGER)
                self.ctx.events(pod, "FailedScheduling", message, "Warning", component=SCHEDULER)
            return
        self._assumed[uid] = node_name
        try:
            await self.volumes.select_node(pod, node_name)
            await self._bind(pod, node_name)
        except BaseException:
            self._assumed.pop(uid, None)
            raise

    async def _bind(self, pod: Obj, node_name: str) -> None:
        namespace, name = key_of(pod)
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": namespace},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}}
        result = await self.ctx.client.request("POST", api_path("v1", "pods", namespace, name, "binding"), binding,
                                               params={"fieldManager": MANAGER})
        if result is None:
            return
        self._reported.pop(pod["metadata"]["uid"], None)
        bound = await self.ctx.client.get("v1", "pods", namespace, name)
        if bound is not None:
            self.ctx.informers.apply("pods", "MODIFIED", bound)
        self.ctx.events(pod, "Scheduled", f"Successfully assigned {namespace}/{name} to {node_name}",
                        component=SCHEDULER)
