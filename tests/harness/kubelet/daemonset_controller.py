"""kube-controller-manager's DaemonSet controller: one pod per eligible node (nodeSelector, affinity,
taints), pinned with a matchFields node affinity; rolling update by maxUnavailable; status."""

from __future__ import annotations

from typing import Dict, List

from .context import Context
from .objects import (Obj, compact, labels_of, node_selected, pod_finished, pod_ready, scaled_value, template_hash,
                      terminating, untolerated_taint)
from .pod_creation import PodCreator

COMPONENT = "daemonset-controller"


def daemon_node(pod: Obj) -> str:
    """The node a daemon pod is for: its nodeName, or the node its matchFields affinity pins."""
    if (pod.get("spec") or {}).get("nodeName"):
        return pod["spec"]["nodeName"]
    terms = ((((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {})
             .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    for term in terms:
        for expr in term.get("matchFields") or []:
            if expr.get("key") == "metadata.name" and expr.get("values"):
                return expr["values"][0]
    return ""


class DaemonSetController:
    def __init__(self, ctx: Context, creator: PodCreator) -> None:
        self.ctx = ctx
        self.creator = creator

    async def sync(self, ds: Obj) -> None:
        if terminating(ds):
            return
        spec = ds.get("spec") or {}
        template = spec.get("template") or {}
        revision = template_hash(template)
        generation = ds["metadata"].get("generation", 1)
        pods = [p for p in self.ctx.owned("pods", ds) if not pod_finished(p)]
        by_node: Dict[str, List[Obj]] = {}
        for pod in pods:
            by_node.setdefault(daemon_node(pod), []).append(pod)
        probe = {"spec": template.get("spec") or {}}
        eligible = [n for n in self.ctx.cache("nodes").values()
                    if node_selected(probe, n) and untolerated_taint(probe, n) is None]
        update = spec.get("updateStrategy") or {}
        rolling = update.get("type", "RollingUpdate") == "RollingUpdate"
        max_unavailable = scaled_value((update.get("rollingUpdate") or {}).get("maxUnavailable", 1),
                                       max(len(eligible), 1), True) or 1
        unavailable = sum(1 for n in eligible if not any(pod_ready(p) and not terminating(p)
                                                         for p in by_node.get(n["metadata"]["name"], [])))
        for node in eligible:
            node_name = node["metadata"]["name"]
            mine = [p for p in by_node.get(node_name, []) if not terminating(p)]
            if not mine and not by_node.get(node_name):
                affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}}}
                created = await self.creator.create(ds, "DaemonSet", template,
                                                    generate_name=ds["metadata"]["name"] + "-",
                                                    extra_labels={"controller-revision-hash": revision,
                                                                  "pod-template-generation": str(generation)},
                                                    spec_overrides={"affinity": affinity})
                if created is None:
                    break
                self.ctx.events(ds, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}",
                                component=COMPONENT)
            elif rolling:
                for pod in mine:
                    stale = labels_of(pod).get("controller-revision-hash") != revision
                    if stale and (unavailable < max_unavailable or not pod_ready(pod)):
                        await self.ctx.client.delete("v1", "pods", pod)
                        unavailable += 1 if pod_ready(pod) else 0
        eligible_names = {n["metadata"]["name"] for n in eligible}
        for node_name, node_pods in by_node.items():
            if node_name not in eligible_names:
                for pod in node_pods:
                    if not terminating(pod):
                        await self.ctx.client.delete("v1", "pods", pod)
        await self._status(ds, revision, generation, eligible_names)

    async def _status(self, ds: Obj, revision: str, generation: int, eligible_names: set) -> None:
        pods = [p for p in self.ctx.owned("pods", ds) if not terminating(p) and not pod_finished(p)]
        scheduled_nodes = {daemon_node(p) for p in pods}
        desired = len(eligible_names)
        ready = sum(1 for p in pods if pod_ready(p))
        updated = sum(1 for p in pods if labels_of(p).get("controller-revision-hash") == revision)
        status = compact({"currentNumberScheduled": len(scheduled_nodes & eligible_names),
                          "numberMisscheduled": len(scheduled_nodes - eligible_names),
                          "desiredNumberScheduled": desired, "numberReady": ready,
                          "observedGeneration": generation, "updatedNumberScheduled": updated,
                          "numberAvailable": ready, "numberUnavailable": max(0, desired - ready)},
                         ("updatedNumberScheduled", "numberAvailable", "numberUnavailable"))
        # a refused create shows as FailedCreate events only: the real controller sets no condition for it
        if status != (ds.get("status") or {}):
            await self.ctx.client.put_status("apps/v1", "daemonsets", ds, status)
