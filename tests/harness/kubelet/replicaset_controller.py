"""kube-controller-manager's ReplicaSet controller: keeps `spec.replicas` active pods, deletes the least
useful extra ones first, reports status, and a refused pod create as `FailedCreate` + `ReplicaFailure`."""

from __future__ import annotations

from typing import Tuple

from .context import Context
from .objects import Obj, compact, condition, labels_of, pod_active, pod_ready, terminating
from .pod_creation import PodCreator

COMPONENT = "replicaset-controller"


class ReplicaSetController:
    def __init__(self, ctx: Context, creator: PodCreator) -> None:
        self.ctx = ctx
        self.creator = creator

    async def sync(self, rs: Obj) -> None:
        if terminating(rs):
            return
        spec = rs.get("spec") or {}
        uid = rs["metadata"]["uid"]
        wanted = int(spec.get("replicas", 1))
        pods = [p for p in self.ctx.owned("pods", rs) if pod_active(p)]
        if len(pods) < wanted:
            for _missing in range(wanted - len(pods)):
                pod = await self.creator.create(rs, "ReplicaSet", spec.get("template") or {},
                                                generate_name=rs["metadata"]["name"] + "-")
                if pod is None:
                    break  # refused: retried with back-off
                self.ctx.events(rs, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}",
                                component=COMPONENT)
        elif len(pods) > wanted:
            def rank(p: Obj) -> Tuple[int, int, str]:
                return (1 if (p.get("spec") or {}).get("nodeName") else 0, 1 if pod_ready(p) else 0,
                        "~" + str(p["metadata"].get("creationTimestamp", "")))
            for pod in sorted(pods, key=rank)[: len(pods) - wanted]:
                await self.ctx.client.delete("v1", "pods", pod)
                self.ctx.events(rs, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}",
                                component=COMPONENT)
        pods = [p for p in self.ctx.owned("pods", rs) if pod_active(p)]
        ready = sum(1 for p in pods if pod_ready(p))
        labels = (spec.get("template") or {}).get("metadata", {}).get("labels") or {}
        fully = sum(1 for p in pods if all(labels_of(p).get(k) == v for k, v in labels.items()))
        status = compact({"replicas": len(pods), "fullyLabeledReplicas": fully, "readyReplicas": ready,
                          "availableReplicas": ready, "observedGeneration": rs["metadata"].get("generation", 1)},
                         ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"))
        failure = self.creator.failure(uid)
        if failure and len(pods) < wanted:
            status["conditions"] = [condition("ReplicaFailure", True, "FailedCreate", failure,
                                              (rs.get("status") or {}).get("conditions"))]
        elif len(pods) >= wanted:
            self.creator.clear(uid)
        if status != (rs.get("status") or {}):
            await self.ctx.client.put_status("apps/v1", "replicasets", rs, status)
